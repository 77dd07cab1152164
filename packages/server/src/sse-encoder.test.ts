import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createParser, type EventSourceMessage, type ParseError } from "eventsource-parser";
import fc from "fast-check";
import {
  encodeComment,
  encodeData,
  encodeEventName,
  encodeId,
  encodeMessage,
  encodeRetry,
  HEARTBEAT,
  SseFieldError,
} from "./sse-encoder.ts";

/** Everything a spec parser reports for a stream. */
interface Parsed {
  events: EventSourceMessage[];
  retries: number[];
  comments: string[];
  errors: ParseError[];
}

function parseChunks(chunks: Iterable<string>): Parsed {
  const out: Parsed = { events: [], retries: [], comments: [], errors: [] };
  const parser = createParser({
    onEvent: (event) => out.events.push(event),
    onRetry: (ms) => out.retries.push(ms),
    onComment: (text) => out.comments.push(text),
    onError: (error) => out.errors.push(error),
  });
  for (const chunk of chunks) parser.feed(chunk);
  return out;
}

function parse(stream: string): Parsed {
  return parseChunks([stream]);
}

/** Decodes UTF-8 the way a browser does (streaming, BOM stripped at the start) and parses. */
function parseBytes(bytes: Uint8Array, cuts: readonly number[]): Parsed {
  const decoder = new TextDecoder();
  const chunks: string[] = [];
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    chunks.push(decoder.decode(bytes.subarray(from, to), { stream: true }));
    from = to;
  }
  chunks.push(decoder.decode());
  return parseChunks(chunks);
}

/** What data looks like after SSE: every line break becomes LF. */
function normalized(data: string): string {
  return data.replace(/\r\n|\r|\n/g, "\n");
}

/** Asserts that `stream` is exactly one event with these fields and nothing else. */
function assertOneEvent(
  stream: string,
  expected: { data: string; id?: string | undefined; event?: string | undefined },
): void {
  const parsed = parse(stream);
  assert.deepEqual(parsed.errors, []);
  assert.deepEqual(parsed.retries, []);
  assert.deepEqual(parsed.comments, []);
  assert.equal(parsed.events.length, 1, `expected one event from ${JSON.stringify(stream)}`);
  assert.deepEqual(parsed.events[0], {
    data: expected.data,
    id: expected.id,
    event: expected.event,
  });
}

const MIB = 1024 * 1024;

describe("encodeData", () => {
  const wire: ReadonlyArray<readonly [string, string, string]> = [
    ["one line", "hello", "data: hello\n\n"],
    ["empty data is one empty line", "", "data: \n\n"],
    ["LF", "a\nb", "data: a\ndata: b\n\n"],
    ["CRLF is one break", "a\r\nb", "data: a\ndata: b\n\n"],
    ["lone CR", "a\rb", "data: a\ndata: b\n\n"],
    ["LF CR is two breaks", "a\n\rb", "data: a\ndata: \ndata: b\n\n"],
    ["CR CR LF is two breaks", "a\r\r\nb", "data: a\ndata: \ndata: b\n\n"],
    ["lone CR at the end", "a\r", "data: a\ndata: \n\n"],
    ["only CRLF", "\r\n", "data: \ndata: \n\n"],
    ["leading space is kept", " x", "data:  x\n\n"],
    ["U+2028 is not a break", "a\u2028b", "data: a\u2028b\n\n"],
    ["U+0085 is not a break", "a\u0085b", "data: a\u0085b\n\n"],
  ];
  for (const [name, data, expected] of wire) {
    it(`writes ${name}`, () => assert.equal(encodeData(data), expected));
  }

  const roundTrips: ReadonlyArray<readonly [string, string]> = [
    ["JSON", JSON.stringify({ type: "chat", content: 'say "hi"\n', n: 1 })],
    ["multi-line", "line 1\nline 2\nline 3"],
    ["LF", "a\nb"],
    ["CR", "a\rb"],
    ["CRLF", "a\r\nb"],
    ["lone CR at the end", "abc\r"],
    ["LF at the end", "abc\n"],
    ["CRLF at the end", "abc\r\n"],
    ["breaks at the start", "\r\n\n\rabc"],
    ["only breaks", "\n\n\n"],
    ["mixed", "a\r\nb\rc\nd\r\r\ne\n\rf"],
    ["emoji", "👋🏽 héllo 🇫🇷 — 漢字"],
    ["U+2028 and U+2029", "a\u2028b\u2029c"],
    ["U+FEFF at the start of data", "\uFEFF{}"],
    ["NUL in data", "a\u0000b"],
    ["leading space", " leading"],
    ["leading spaces and tab", "  \tx"],
    ["empty", ""],
    ["a colon-led line", ":not a comment"],
    ["field-like text", "id: 1"],
  ];
  for (const [name, data] of roundTrips) {
    it(`round-trips ${name}`, () => assertOneEvent(encodeData(data), { data: normalized(data) }));
  }

  it("keeps a U+FEFF at the start of data on a fresh byte stream", () => {
    // A decoder strips a BOM only at the very start of the stream, which is "data: " here.
    const bytes = new TextEncoder().encode(encodeData("\uFEFFx"));
    const parsed = parseBytes(bytes, []);
    assert.deepEqual(
      parsed.events.map((e) => e.data),
      ["\uFEFFx"],
    );
  });

  it("round-trips a 1 MiB value", () => {
    const data = `${"x".repeat(MIB - 2)}é`;
    assertOneEvent(encodeData(data), { data });
  });

  it("round-trips a 1 MiB value made of short lines", () => {
    const data = "abc\r\ndef\rghi\n".repeat(MIB / 13);
    assertOneEvent(encodeData(data), { data: normalized(data) });
  });
});

describe("injection through data", () => {
  const attempts = [
    "\n\nevent: admin\ndata: x",
    "\r\n\r\nevent: admin\r\ndata: x",
    "\r\rid: 99\r\rdata: x",
    "\rid: 99",
    "\nid: 99",
    "x\n\nretry: 1\n\ndata: y",
    "\n: comment\n\n",
    "\n\n\n",
    "data: x\n\ndata: y",
    "x\n\nevent: close\nid: 1.AAAA\ndata: {}\n\n",
    "\nevent:\nid:\nretry:\n",
    "\u0000\nid: 1\u0000",
  ];
  for (const data of attempts) {
    it(`stays one event: ${JSON.stringify(data)}`, () => {
      assertOneEvent(encodeData(data), { data: normalized(data) });
      assertOneEvent(encodeMessage({ id: "1.abc", event: "chat", data }), {
        data: normalized(data),
        id: "1.abc",
        event: "chat",
      });
    });
  }
});

describe("encodeId", () => {
  it("writes an id line that the next event carries", () => {
    assert.equal(encodeId("1.AbCd0001"), "id: 1.AbCd0001\n");
    assertOneEvent(encodeId("1.AbCd0001") + encodeData("{}"), { data: "{}", id: "1.AbCd0001" });
  });

  it("keeps a leading space and unicode", () => {
    assertOneEvent(encodeId(" é👋") + encodeData(""), { data: "", id: " é👋" });
  });

  it("allows an empty id, which clears the client's last id", () => {
    assertOneEvent(encodeId("") + encodeData("x"), { data: "x", id: "" });
  });

  for (const bad of ["a\nb", "a\rb", "a\r\nb", "\n", "x\r", "a\u0000b", "\u0000"]) {
    it(`throws on ${JSON.stringify(bad)}`, () => {
      assert.throws(
        () => encodeId(bad),
        (error) => error instanceof SseFieldError && error.field === "id",
      );
    });
  }

  it("names the character without echoing the value", () => {
    assert.throws(() => encodeId("secret\n"), {
      name: "SseFieldError",
      message: /U\+000A at index 6/,
    });
    assert.throws(
      () => encodeId("secret\n"),
      (error: Error) => !error.message.includes("secret"),
    );
  });
});

describe("encodeEventName", () => {
  it("writes an event line", () => {
    assert.equal(encodeEventName("reset"), "event: reset\n");
    assertOneEvent(encodeEventName("reset") + encodeData("{}"), { data: "{}", event: "reset" });
  });

  it("keeps a leading space", () => {
    assertOneEvent(encodeEventName(" x") + encodeData(""), { data: "", event: " x" });
  });

  for (const bad of ["", "a\nb", "a\rb", "a\r\nb", "close\n", "a\u0000"]) {
    it(`throws on ${JSON.stringify(bad)}`, () => {
      assert.throws(
        () => encodeEventName(bad),
        (error) => error instanceof SseFieldError && error.field === "event",
      );
    });
  }
});

describe("encodeRetry", () => {
  for (const ms of [0, 1, 1000, 30_000, Number.MAX_SAFE_INTEGER]) {
    it(`writes ${ms}`, () => {
      assert.equal(encodeRetry(ms), `retry: ${ms}\n`);
      const parsed = parse(encodeRetry(ms));
      assert.deepEqual(parsed.retries, [ms]);
      assert.deepEqual(parsed.events, []);
    });
  }

  it("writes -0 as 0", () => assert.equal(encodeRetry(-0), "retry: 0\n"));

  for (const ms of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 1e21]) {
    it(`throws on ${ms}`, () => {
      assert.throws(
        () => encodeRetry(ms),
        (error) => error instanceof SseFieldError && error.field === "retry",
      );
    });
  }
});

describe("encodeComment and HEARTBEAT", () => {
  it("writes one comment line per line, with no blank line", () => {
    assert.equal(encodeComment("hi"), ": hi\n");
    assert.equal(encodeComment(""), ": \n");
    assert.equal(encodeComment("a\r\nb\rc\nd"), ": a\n: b\n: c\n: d\n");
  });

  it("cannot start a field or an event", () => {
    const parsed = parse(`${encodeComment("x\n\ndata: evil\n\nid: 9\r\n")}\n`);
    assert.deepEqual(parsed.events, []);
    assert.deepEqual(parsed.errors, []);
    assert.deepEqual(parsed.comments, ["x", "", "data: evil", "", "id: 9", ""]);
  });

  it("HEARTBEAT is a comment that dispatches nothing", () => {
    assert.equal(HEARTBEAT, ": hb\n\n");
    const parsed = parse(HEARTBEAT + HEARTBEAT);
    assert.deepEqual(parsed.events, []);
    assert.deepEqual(parsed.comments, ["hb", "hb"]);
  });

  it("HEARTBEAT between messages leaves them intact", () => {
    const a = encodeMessage({ id: "1", data: "a" });
    const b = encodeMessage({ event: "reset", data: "b" });
    const parsed = parse(HEARTBEAT + a + HEARTBEAT + b + HEARTBEAT);
    assert.deepEqual(parsed.events, [
      { id: "1", event: undefined, data: "a" },
      { id: undefined, event: "reset", data: "b" },
    ]);
  });
});

describe("encodeMessage", () => {
  it("writes event, id, retry, data, blank line in that order", () => {
    assert.equal(
      encodeMessage({ event: "close", id: "1.x", retry: 5000, data: "{}\n" }),
      "event: close\nid: 1.x\nretry: 5000\ndata: {}\ndata: \n\n",
    );
  });

  it("leaves out the fields that are not given", () => {
    assert.equal(encodeMessage({ data: "x" }), "data: x\n\n");
    assert.equal(encodeMessage({ id: undefined, event: undefined, data: "x" }), "data: x\n\n");
  });

  it("parses back with every field", () => {
    const parsed = parse(encodeMessage({ event: "close", id: "7", retry: 250, data: "a\r\nb" }));
    assert.deepEqual(parsed.retries, [250]);
    assert.deepEqual(parsed.events, [{ event: "close", id: "7", data: "a\nb" }]);
  });

  it("is what the hot path writes: per-connection id + shared data block", () => {
    const shared = encodeData('{"type":"chat"}');
    assert.equal(encodeId("1.a") + shared, encodeMessage({ id: "1.a", data: '{"type":"chat"}' }));
  });

  it("throws like the functions it composes", () => {
    assert.throws(() => encodeMessage({ id: "a\nb", data: "" }), SseFieldError);
    assert.throws(() => encodeMessage({ event: "", data: "" }), SseFieldError);
    assert.throws(() => encodeMessage({ retry: -5, data: "" }), SseFieldError);
  });
});

describe("chunked delivery", () => {
  const messages = [
    encodeMessage({ event: "chat", id: "1.AAAA0001", data: "héllo 👋🏽\r\nsecond\rthird" }),
    HEARTBEAT,
    encodeId("1.AAAA0002") + encodeData(" \uFEFF\u2028 \n\n"),
    encodeMessage({ retry: 3000, data: "" }),
    encodeMessage({ data: "🇫🇷\r" }),
  ];
  const stream = messages.join("");
  const bytes = new TextEncoder().encode(stream);
  const whole = parse(stream);

  it("parses the sample as expected", () => {
    assert.deepEqual(whole.errors, []);
    assert.deepEqual(whole.retries, [3000]);
    assert.deepEqual(whole.events, [
      { event: "chat", id: "1.AAAA0001", data: "héllo 👋🏽\nsecond\nthird" },
      { event: undefined, id: "1.AAAA0002", data: " \uFEFF\u2028 \n\n" },
      { event: undefined, id: undefined, data: "" },
      { event: undefined, id: undefined, data: "🇫🇷\n" },
    ]);
  });

  it("gives the same events when the bytes are split at any boundary", () => {
    for (let cut = 1; cut < bytes.length; cut++) {
      assert.deepEqual(parseBytes(bytes, [cut]), whole, `split at byte ${cut}`);
    }
  });

  it("gives the same events when every byte is its own chunk", () => {
    const cuts = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
    assert.deepEqual(parseBytes(bytes, cuts), whole);
  });

  it("gives the same events when every UTF-16 unit is its own chunk", () => {
    assert.deepEqual(parseChunks(stream.split("")), whole);
  });
});

describe("properties", () => {
  const breaks = fc.constantFrom("\r", "\n", "\r\n");
  const text = fc.oneof(fc.string({ unit: "binary" }), fc.string({ unit: "grapheme" }));
  const data = fc.array(fc.oneof(text, breaks), { maxLength: 12 }).map((parts) => parts.join(""));
  const fieldValue = fc.string({ unit: "binary" }).filter((s) => !/[\r\n\0]/.test(s));
  const eventName = fieldValue.filter((s) => s.length > 0);
  const anyFieldValue = fc
    .array(fc.oneof(fc.string({ unit: "binary" }), fc.constantFrom("\r", "\n", "\0")), {
      maxLength: 4,
    })
    .map((parts) => parts.join(""));

  it("encodeMessage round-trips data, id and event, even split in two chunks", () => {
    fc.assert(
      fc.property(
        data,
        fc.option(fieldValue, { nil: undefined }),
        fc.option(eventName, { nil: undefined }),
        fc.nat(),
        (value, id, event, cutSeed) => {
          const stream = encodeMessage({ id, event, data: value });
          const cut = cutSeed % (stream.length + 1);
          const parsed = parseChunks([stream.slice(0, cut), stream.slice(cut)]);
          assert.deepEqual(parsed.errors, []);
          assert.deepEqual(parsed.events, [{ id, event, data: normalized(value) }]);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("encodeId + encodeData equals encodeMessage, and fields with CR, LF or NUL throw", () => {
    fc.assert(
      fc.property(data, anyFieldValue, (value, id) => {
        if (/[\r\n\0]/.test(id)) {
          assert.throws(() => encodeId(id), SseFieldError);
          assert.throws(() => encodeEventName(id), SseFieldError);
        } else {
          assert.equal(encodeId(id) + encodeData(value), encodeMessage({ id, data: value }));
        }
      }),
      { numRuns: 500 },
    );
  });
});
