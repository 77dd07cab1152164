/**
 * Hostile input: oversized bodies, contents, channel names and channel lists; control
 * characters and lookalikes; compressed bodies (a gzip bomb); and random events with every
 * kind of line break and field syntax in them, checked end to end — POST → broker → hub →
 * SSE bytes → a spec parser — for injected fields or extra events (fast-check). Each refusal
 * is a 4xx with its code, while a well-behaved client on the same pod keeps receiving.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import {
  ofType,
  openStream,
  postJson,
  type Reply,
  refusal,
  request,
  type Stream,
  tokens,
} from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";
import fc from "fast-check";

const BODY_LIMIT = 16384;

describe("hostile input", () => {
  let svc: RunningService;
  let good: { token: string };
  let goodStream: Stream;
  let service: string;

  before(async () => {
    svc = await startService({
      BODY_LIMIT_BYTES: String(BODY_LIMIT),
      MAX_CHAT_CONTENT_LENGTH: "1000",
      RATE_LIMIT_CHAT_MAX: "100000",
      RATE_LIMIT_PUBLISH_MAX: "100000",
      CHANNEL_PUBLISH_MAX: "100000",
    });
    good = await svc.login("Good");
    service = await tokens().issueServiceToken({ service: "fuzz", scopes: ["publish"] });
    goodStream = await openStream(`${svc.url}/api/events?channel=channel:input`, {
      authorization: `Bearer ${good.token}`,
    });
    assert.equal(goodStream.status, 200);
  });
  after(async () => {
    goodStream.close();
    await svc.stop();
  });

  async function goodStillWorks(content: string): Promise<void> {
    const posted = await postJson(`${svc.url}/api/chat/messages`, good.token, {
      channel: "input",
      content,
    });
    assert.equal(posted.status, 204, posted.text);
    await goodStream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === content);
  }

  function assertRefused(reply: Reply, status: number, code: string, what: string) {
    assert.equal(reply.status, status, `${what}: ${reply.text}`);
    assert.equal(reply.json?.code, code, what);
  }

  const chat = (body: unknown) => postJson(`${svc.url}/api/chat/messages`, good.token, body);

  it("size caps: body, content, channel name, channels per stream", async () => {
    assertRefused(
      await chat({ channel: "input", content: "x".repeat(BODY_LIMIT) }),
      413,
      "RT_ERR_PAYLOAD_TOO_LARGE",
      "body over BODY_LIMIT_BYTES",
    );
    assertRefused(
      await chat({ channel: "input", content: "x".repeat(1001) }),
      400,
      "RT_ERR_BAD_REQUEST",
      "content over MAX_CHAT_CONTENT_LENGTH",
    );
    assertRefused(
      await chat({ channel: `channel:${"a".repeat(129)}`, content: "x" }),
      400,
      "RT_ERR_BAD_CHANNEL",
      "channel id over 128",
    );
    const event = { type: "note", message: "x".repeat(17 * 1024) };
    const big = await postJson(`${svc.url}/api/publish`, service, { channel: "channel:x", event });
    // 17 KiB of event in a body under 16 KiB is impossible: the body limit answers first.
    assert.equal(big.status, 413);
    const auth = { authorization: `Bearer ${good.token}` };
    for (const [count, code] of [
      [17, "RT_ERR_TOO_MANY_CHANNELS"],
      [257, "RT_ERR_BAD_REQUEST"],
    ] as const) {
      const query = Array.from({ length: count }, (_, i) => `channel=channel:c${i}`).join("&");
      const stream = await openStream(`${svc.url}/api/events?${query}`, auth);
      assert.equal(stream.status, 400, `${count} channels`);
      assert.equal((await refusal(stream)).code, code);
    }
    const cursor = await openStream(
      `${svc.url}/api/events?channel=channel:input&lastEventId=${"1".repeat(5000)}`,
      auth,
    );
    assert.equal(cursor.status, 400);
    await goodStillWorks("after size caps");
  });

  it("an event over 16 KiB is refused by the publish API", async () => {
    const svcBig = await startService({ BODY_LIMIT_BYTES: "65536" });
    try {
      const token = await tokens().issueServiceToken({ service: "big", scopes: ["publish"] });
      const reply = await postJson(`${svcBig.url}/api/publish`, token, {
        channel: "channel:x",
        event: { type: "note", message: "x".repeat(17 * 1024) },
      });
      assertRefused(reply, 413, "RT_ERR_PAYLOAD_TOO_LARGE", "event over MAX_EVENT_BYTES");
    } finally {
      await svcBig.stop();
    }
  });

  it("deeply nested JSON (depth 5,000 in 10 KB) is refused with 400 on every route, never 500", async () => {
    const raw = (path: string, body: string, token: string, headers = {}) =>
      request(`${svc.url}${path}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${token}`,
          ...headers,
        },
        body,
      });
    const arrays = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
    const objects = (depth: number) => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
    const event = (value: string) =>
      `{"channel":"channel:deep","event":{"type":"note","data":${value}}}`;

    // The finding: the publish API answered 500 (Maximum call stack size exceeded).
    for (const [what, body, headers] of [
      ["arrays", event(arrays(5000)), {}],
      ["objects", event(objects(2000)), {}],
      ["objects, with an Idempotency-Key", event(objects(2000)), { "idempotency-key": "deep-1" }],
      [
        "a __proto__ at the bottom",
        event(`${'{"a":'.repeat(2000)}{"__proto__":1}${"}".repeat(2000)}`),
        {},
      ],
    ] as const) {
      assert.ok(body.length <= BODY_LIMIT, `${what}: ${body.length} bytes`);
      const reply = await raw("/api/publish", body, service, headers);
      assert.equal(reply.status, 400, `${what}: ${reply.text}`);
      assert.match(String(reply.json?.code), /^RT_ERR_BAD_REQUEST$/, what);
      assert.equal(typeof reply.json?.message, "string");
    }
    const deep = await raw("/api/publish", event(arrays(5000)), service);
    assert.match(String(deep.json?.message), /nested deeper than 32/);

    // Every other route that takes a JSON body: parsed without harm (the parser does not
    // recurse), then a catalogue 4xx where the shape is wrong, or ignored where none is read.
    const routes = [
      ["/api/chat/messages", `{"channel":"deep","content":${arrays(5000)}}`, good.token, 400],
      ["/api/generate/video", `{"prompt":${arrays(5000)}}`, good.token, 400],
      ["/api/auth/dev-login", `{"name":${arrays(5000)}}`, good.token, 400],
      ["/api/publish", `{"channel":${arrays(5000)},"event":{"type":"note"}}`, service, 400],
      ["/api/auth/logout", arrays(5000), good.token, 204],
    ] as const;
    for (const [path, body, token, status] of routes) {
      const reply = await raw(path, body, token);
      assert.equal(reply.status, status, `${path}: ${reply.text}`);
      if (status >= 400) assert.match(String(reply.json?.code), /^RT_ERR_/, path);
    }

    // At the cap it goes through, and arrives whole.
    const atCap = event(arrays(31)); // the event object is level 1
    const accepted = await raw(
      "/api/publish",
      atCap.replace("channel:deep", "channel:input"),
      service,
    );
    assert.equal(accepted.status, 202, accepted.text);
    await goodStream.waitFor((e) => {
      const data = JSON.parse(e.data) as { type?: string; data?: unknown };
      return data.type === "note" && JSON.stringify(data.data) === arrays(31);
    });
    const overCap = await raw("/api/publish", event(arrays(32)), service);
    assertRefused(overCap, 400, "RT_ERR_BAD_REQUEST", "one level over the cap");
    await goodStillWorks("after deep JSON");
  });

  it("control characters and lookalikes never reach a channel, a name or a field", async () => {
    const badChannels = [
      "input\n",
      "input\r\nevent: close",
      "in\u0000put",
      "gеneral", // Cyrillic е
      "channel:ｇeneral", // fullwidth
      "channel:general\u200b",
      "user:someone-else",
      "channel:{hash}",
    ];
    for (const channel of badChannels) {
      const reply = await chat({ channel, content: "x" });
      assert.equal(reply.status, 400, JSON.stringify(channel));
      assert.equal(reply.json?.code, "RT_ERR_BAD_CHANNEL", JSON.stringify(channel));
      // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for them is the point
      assert.doesNotMatch(String(reply.json?.message), /[\r\n\u0000]/, "message echoes safely");
    }
    for (const content of ["bell\u0007", "\u001b[31mred", "nul\u0000", "c1\u0085"]) {
      assertRefused(await chat({ channel: "input", content }), 400, "RT_ERR_BAD_REQUEST", content);
    }
    for (const name of ["Ada\nLovelace", "Ada\u202e", "\u0000"]) {
      assertRefused(
        await postJson(`${svc.url}/api/auth/dev-login`, null, { name }),
        400,
        "RT_ERR_BAD_REQUEST",
        JSON.stringify(name),
      );
    }
    assertRefused(
      await postJson(`${svc.url}/api/generate/video`, good.token, { prompt: "a\nb" }),
      400,
      "RT_ERR_BAD_REQUEST",
      "prompt",
    );
    for (const event of [
      { type: "close" },
      { type: "x\nevent: close" },
      { type: "note", channel: "channel:other" },
      { type: "note", "bad field": 1 },
    ]) {
      const reply = await postJson(`${svc.url}/api/publish`, service, {
        channel: "channel:input",
        event,
      });
      assertRefused(reply, 400, "RT_ERR_BAD_REQUEST", JSON.stringify(event));
    }
    await goodStillWorks("after control characters");
  });

  it("compressed bodies are refused with 415 before inflating (a 10 MiB gzip bomb)", async () => {
    const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024, 0x20), { level: 9 });
    assert.ok(bomb.length < BODY_LIMIT, `the bomb fits the body limit (${bomb.length} B)`);
    const heapBefore = process.memoryUsage().heapUsed;
    for (const encoding of ["gzip", "deflate", "br", "gzip, identity", "x-gzip"]) {
      const reply = await request(`${svc.url}/api/chat/messages`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "content-encoding": encoding,
          authorization: `Bearer ${good.token}`,
        },
        body: bomb,
      });
      assertRefused(reply, 415, "RT_ERR_UNSUPPORTED_MEDIA_TYPE", encoding);
    }
    assert.ok(process.memoryUsage().heapUsed - heapBefore < 8 * 1024 * 1024, "never inflated");
    const identity = await request(`${svc.url}/api/chat/messages`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "content-encoding": "identity",
        authorization: `Bearer ${good.token}`,
      },
      body: JSON.stringify({ channel: "input", content: "identity is fine" }),
    });
    assert.equal(identity.status, 204);
    await goodStillWorks("after the bomb");
  });

  it("property: random hostile events come out as exactly one event each, byte-identical JSON", async () => {
    const channel = "channel:property";
    const stream = await openStream(`${svc.url}/api/events?channel=${channel}`, {
      authorization: `Bearer ${good.token}`,
    });
    assert.equal(stream.status, 200);
    const hostile = fc.constantFrom(
      "\n",
      "\r",
      "\r\n",
      "\n\n",
      "\u0000",
      "\n\nevent: close\ndata: {}\n\n",
      "\rid: 1.zzzz\r",
      "\nretry: 1\n",
      ": comment\n",
      "data: x\n\n",
      "\u2028\u2029\u0085\ufeff",
      "\ud800",
      '"}\n',
    );
    const text = fc
      .array(fc.oneof(fc.string({ unit: "binary", maxLength: 20 }), hostile), { maxLength: 6 })
      .map((parts) => parts.join(""));
    const value: fc.Arbitrary<unknown> = fc.oneof(
      text,
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(text, { maxLength: 3 }),
      // Keys the JSON parser refuses as prototype poisoning are a 400 of their own.
      fc.dictionary(
        text.filter((key) => key !== "__proto__" && key !== "constructor"),
        text,
        { maxKeys: 3 },
      ),
    );
    const fieldName = fc
      .stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,10}$/)
      .filter((name) => name !== "channel" && name !== "timestamp" && name !== "type");
    const event = fc
      .tuple(
        fc
          .stringMatching(/^[a-z][a-z0-9_.-]{0,20}$/)
          .filter((t) => !["reset", "close", "message", "error", "open"].includes(t)),
        fc.dictionary(fieldName, value, { maxKeys: 6 }),
      )
      .map(([type, fields]) => ({ ...fields, type }));

    const sent: Record<string, unknown>[] = [];
    await fc.assert(
      fc.asyncProperty(event, async (e) => {
        const reply = await svc.service.app.inject({
          method: "POST",
          url: "/api/publish",
          headers: { authorization: `Bearer ${service}`, "content-type": "application/json" },
          payload: JSON.stringify({ channel, event: e }),
        });
        assert.equal(reply.statusCode, 202, reply.body);
        sent.push(JSON.parse(JSON.stringify(e)) as Record<string, unknown>);
      }),
      { numRuns: 300 },
    );
    // A marker after the random ones: once it is in, everything before it is too.
    await postJson(`${svc.url}/api/publish`, service, {
      channel,
      event: { type: "marker" },
    });
    await stream.waitFor(ofType("marker"), 10_000);
    const received = stream.events.filter((m) => m.event === undefined);
    const controls = stream.events.filter((m) => m.event !== undefined).map((m) => m.event);
    assert.ok(
      controls.every((name) => name === "ready"),
      `only the ready event: ${controls}`,
    );
    const application = received.map((m) => JSON.parse(m.data) as Record<string, unknown>);
    const random = application.filter((m) => m.type !== "marker" && m.type !== "presence");
    assert.equal(random.length, sent.length, "one event per publish, none injected");
    for (const [i, got] of random.entries()) {
      const { channel: ch, timestamp, ...rest } = got;
      assert.equal(ch, channel);
      assert.equal(typeof timestamp, "string");
      assert.deepEqual(rest, sent[i], `event ${i}`);
    }
    for (const m of received) assert.match(m.id ?? "", /^1\.[0-9A-Za-z.]+$/, "ids are cursors");
    stream.close();
    await goodStillWorks("after the property run");
  });
});
