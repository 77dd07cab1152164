/**
 * The logger names `pino-pretty` only where it is installed: a production install has no dev
 * dependencies, and the service must still log (JSON) there.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import pino from "pino";
import { loggerOptions, PRETTY_TRANSPORT, resolvable } from "./logger-options.ts";

const DEV = { isProduction: false, logLevel: "info" } as const;
const PROD = { isProduction: true, logLevel: "info" } as const;

function transportOf(options: ReturnType<typeof loggerOptions>): unknown {
  return typeof options === "object" && options !== null && "transport" in options
    ? options.transport
    : undefined;
}

describe("loggerOptions: pino-pretty or JSON", () => {
  it("pretty-prints only in development, on a terminal, with pino-pretty installed", () => {
    const options = loggerOptions(DEV, { isTTY: true, prettyAvailable: () => true });
    assert.deepEqual(transportOf(options), {
      target: "pino-pretty",
      options: { translateTime: "HH:MM:ss.l", ignore: "pid,hostname" },
    });
  });

  it("falls back to JSON on a terminal when pino-pretty cannot be resolved (no dev dependencies)", () => {
    const options = loggerOptions(DEV, { isTTY: true, prettyAvailable: () => false });
    assert.equal(transportOf(options), undefined);
    assert.equal((options as { level: string }).level, "info");
  });

  it("logs JSON in production and off a terminal without even looking for pino-pretty", () => {
    const looked: string[] = [];
    const prettyAvailable = () => {
      looked.push("looked");
      return true;
    };
    assert.equal(transportOf(loggerOptions(PROD, { isTTY: true, prettyAvailable })), undefined);
    assert.equal(transportOf(loggerOptions(DEV, { isTTY: false, prettyAvailable })), undefined);
    assert.deepEqual(looked, []);
  });

  it("keeps the redaction and the request serializer whichever it picks", () => {
    for (const prettyAvailable of [() => true, () => false]) {
      const options = loggerOptions(DEV, { isTTY: true, prettyAvailable }) as {
        redact: { paths: string[] };
        serializers: { req: unknown };
      };
      assert.ok(options.redact.paths.includes("req.headers.authorization"));
      assert.equal(typeof options.serializers.req, "function");
    }
  });

  it("resolves packages for real: pino-pretty here (a dev install), a missing package not", () => {
    assert.equal(resolvable(PRETTY_TRANSPORT), true);
    assert.equal(resolvable("@realtime/no-such-package"), false);
  });

  it("the fallback options make a working pino logger that writes JSON lines", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const options = loggerOptions(DEV, { isTTY: true, prettyAvailable: () => false });
    const log = pino(options as pino.LoggerOptions, sink);
    log.info({ req: { method: "GET", url: "/x?token=s3cret", headers: {} } }, "hello");
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0]!) as { msg: string; req: { url: string } };
    assert.equal(entry.msg, "hello");
    assert.equal(entry.req.url, "/x?token=[redacted]");
  });
});
