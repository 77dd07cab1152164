/**
 * The `realtime` operator CLI as an operator runs it: `bin/realtime.mjs` in a child process
 * with only the environment given (plus PATH), against a real Redis and a real service.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { ChannelName } from "@realtime/protocol";
import { RedisBroker } from "@realtime/redis";
import { freePort, startRedis, type TestRedis } from "@realtime/testkit/redis";
import { type RunningService, startService, TEST_SECRET } from "@realtime/testkit/service";
import { openHttp1, type SseClient } from "@realtime/testkit/sse-client";
import { createAuth } from "../auth.ts";
import { loadConfig } from "../config.ts";

const BIN = fileURLToPath(new URL("../../../../bin/realtime.mjs", import.meta.url));
const ROOT_PACKAGE = new URL("../../../../package.json", import.meta.url);
/** Not the testkit's: a secret the CLI must never print. */
const SECRET = `cli-secret-${randomBytes(16).toString("hex")}`;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `realtime …args` with exactly `env` (and PATH); resolves however it exits. */
function realtime(args: readonly string[], env: Readonly<Record<string, string>> = {}) {
  return new Promise<Run>((resolve, reject) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { PATH: process.env.PATH ?? "", ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number") reject(error);
        else resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}

/** stderr as lines, without a trailing empty one. */
const lines = (text: string) => text.split("\n").filter((line) => line !== "");

describe("realtime --version and --help", () => {
  it("--version prints the root package's version", async () => {
    const { version } = JSON.parse(readFileSync(ROOT_PACKAGE, "utf8")) as { version: string };
    for (const flag of ["--version", "-v"]) {
      const run = await realtime([flag]);
      assert.deepEqual(run, { code: 0, stdout: `${version}\n`, stderr: "" });
    }
  });

  it("--help lists every command; each command has its own help", async () => {
    const run = await realtime(["--help"]);
    assert.equal(run.code, 0);
    for (const command of ["token", "publish", "presence", "check-config"]) {
      assert.match(run.stdout, new RegExp(`^  ${command} `, "m"));
      const own = await realtime([command, "--help"]);
      assert.equal(own.code, 0, command);
      assert.match(own.stdout, new RegExp(`^usage: realtime ${command}`), command);
      if (command === "publish") {
        assert.equal((await realtime(["help", command])).stdout, own.stdout);
      }
    }
    assert.equal((await realtime([])).stdout, run.stdout);
  });

  it("an unknown command or option is one line on stderr and exit 64", async () => {
    for (const args of [["frobnicate"], ["--frobnicate"], ["check-config", "--frobnicate"]]) {
      const run = await realtime(args);
      assert.equal(run.code, 64, args.join(" "));
      assert.equal(run.stdout, "");
      assert.equal(lines(run.stderr).length, 1, run.stderr);
      assert.match(run.stderr, /^realtime: .*frobnicate/);
    }
  });
});

describe("realtime check-config", () => {
  const REDIS_PASSWORD = `pw-${randomBytes(8).toString("hex")}`;
  const production = {
    NODE_ENV: "production",
    JWT_SECRET: SECRET,
    REDIS_URL: `redis://:${REDIS_PASSWORD}@redis.internal:6380/0`,
    PORT: "9090",
    METRICS_PORT: "9091",
    MAX_CONNECTIONS: "2500",
    CHANNEL_DEFAULT_ACCESS: "closed",
  };

  it("a valid environment: exit 0 and what would run, from the service's own loader", async () => {
    const run = await realtime(["check-config"], production);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, "");
    assert.match(run.stdout, /^configuration is valid/);
    assert.match(run.stdout, /^ {2}NODE_ENV +production/m);
    assert.match(
      run.stdout,
      /^ {2}mode +redis \(REDIS_URL redis:\/\/:\*{4}@redis\.internal:6380\/0,/m,
    );
    assert.match(run.stdout, /^ {2}listen +0\.0\.0\.0:9090, http\/1\.1$/m);
    assert.match(run.stdout, /^ {2}metrics +GET \/metrics on 0\.0\.0\.0:9091$/m);
    assert.match(run.stdout, /^ {2}streams +2500 per pod/m);
    assert.match(run.stdout, /^ {2}dev login +off$/m);
    assert.doesNotMatch(run.stdout, /warning/);
    // Embedded and cluster modes name themselves too.
    const embedded = await realtime(["check-config"], {});
    assert.equal(embedded.code, 0);
    assert.match(embedded.stdout, /^ {2}mode +embedded /m);
    assert.match(embedded.stdout, /^warning: JWT_SECRET is not set/m);
    const cluster = await realtime(["check-config"], { REDIS_CLUSTER_NODES: "a:7000,b:7001" });
    assert.match(cluster.stdout, /^ {2}mode +cluster \(REDIS_CLUSTER_NODES a:7000,b:7001,/m);
  });

  it("never prints a secret: JWT_SECRET by length, the Redis password masked, also in --json", async () => {
    const text = await realtime(["check-config"], production);
    const json = await realtime(["check-config", "--json"], production);
    for (const run of [text, json]) {
      assert.equal(run.code, 0);
      assert.ok(!run.stdout.includes(SECRET), "JWT_SECRET printed");
      assert.ok(!run.stdout.includes(REDIS_PASSWORD), "the Redis password printed");
    }
    assert.match(
      text.stdout,
      new RegExp(`^ {2}JWT_SECRET +\\*{4} \\(${SECRET.length} characters\\)$`, "m"),
    );
    const config = JSON.parse(json.stdout) as ReturnType<typeof loadConfig>;
    const expected = loadConfig(production);
    // Everything else as the service reads it.
    assert.deepEqual(config.limits, expected.limits);
    assert.deepEqual(config.http, expected.http);
    assert.equal(config.redis.mode, "standalone");
    assert.equal(config.redis.url, "redis://:****@redis.internal:6380/0");
    assert.equal(config.auth.secret, `**** (${SECRET.length} characters)`);
    // A user without a password (Redis 6 ACL username only is taken as the password).
    const bare = await realtime(["check-config"], { REDIS_URL: `redis://${REDIS_PASSWORD}@h:1` });
    assert.equal(bare.code, 0);
    assert.ok(!bare.stdout.includes(REDIS_PASSWORD));
  });

  it("production without JWT_SECRET: exit 1 and one line that says so", async () => {
    const run = await realtime(["check-config"], { NODE_ENV: "production" });
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.deepEqual(lines(run.stderr), [
      "realtime check-config: JWT_SECRET is required in production (at least 32 characters) unless JWT_JWKS_URL is set",
    ]);
  });

  it("every problem is a line of its own, and a short secret is not echoed", async () => {
    const short = "tooshort-secret";
    const run = await realtime(["check-config"], {
      JWT_SECRET: short,
      PORT: "http",
      REDIS_URL: "http://u:pw@x",
    });
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    const problems = lines(run.stderr);
    assert.equal(problems.length, 3, run.stderr);
    assert.ok(problems.every((line) => line.startsWith("realtime check-config: ")));
    assert.match(run.stderr, /PORT must be a decimal integer/);
    assert.match(run.stderr, /JWT_SECRET must be at least 32 characters, got 15/);
    assert.match(run.stderr, /REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/);
    assert.ok(!run.stderr.includes(short) && !run.stderr.includes("pw"));
  });
});

describe("realtime token", () => {
  const env = { JWT_SECRET: SECRET, JWT_ISSUER: "ops", TOKEN_TTL_SECONDS: "600" };
  const auth = createAuth(loadConfig(env).auth);

  it("mints a service token the service's auth accepts, default scope publish", async () => {
    const run = await realtime(["token", "billing"], env);
    assert.equal(run.code, 0, run.stderr);
    const identity = await auth.verify(run.stdout.trim());
    assert.equal(identity.kind, "service");
    assert.ok(identity.kind === "service");
    assert.equal(identity.service, "billing");
    assert.deepEqual(identity.scopes, ["publish"]);
    const scoped = await realtime(["token", "reports", "publish", "audit", "--ttl", "30"], env);
    const other = await auth.verify(scoped.stdout.trim());
    assert.ok(other.kind === "service");
    assert.deepEqual(other.scopes, ["publish", "audit"]);
    assert.ok(other.expiresAt <= Date.now() + 31_000, "--ttl 30");
    // Another secret's service refuses it.
    const foreign = createAuth(loadConfig({ JWT_SECRET: `${SECRET}x`, JWT_ISSUER: "ops" }).auth);
    await assert.rejects(foreign.verify(run.stdout.trim()));
  });

  it("--user mints a user token", async () => {
    const run = await realtime(["token", "--user", "ada", "--name", "Ada L."], env);
    assert.equal(run.code, 0, run.stderr);
    const identity = await auth.verify(run.stdout.trim());
    assert.ok(identity.kind === "user");
    assert.equal(identity.userId, "ada");
    assert.equal(identity.userName, "Ada L.");
  });

  it("refuses without JWT_SECRET, or without a service name, in one line", async () => {
    const unset = await realtime(["token", "billing"], {});
    assert.equal(unset.code, 78);
    assert.equal(unset.stdout, "");
    assert.deepEqual(lines(unset.stderr), [
      "realtime: JWT_SECRET is not set: a token signed with a random key is useless to the pods; set it first",
    ]);
    const nameless = await realtime(["token"], env);
    assert.equal(nameless.code, 64);
    assert.equal(lines(nameless.stderr).length, 1);
    const bad = await realtime(["token", "no spaces"], env);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /^realtime: invalid service name/);
  });
});

describe("realtime publish through Redis", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());

  it("puts the event on the Redis path: it is in the channel's history, in order", async () => {
    const prefix = `cli_${randomBytes(4).toString("hex")}`;
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: prefix };
    const first = await realtime(
      ["publish", "channel:ops", '{"type":"notice","text":"maintenance at 22:00"}'],
      env,
    );
    assert.equal(first.code, 0, first.stderr);
    const one = JSON.parse(first.stdout) as Record<string, unknown>;
    assert.deepEqual(one, {
      channel: "channel:ops",
      epoch: one.epoch,
      offset: 1,
      duplicate: false,
      via: "redis",
    });
    const again = ["publish", "channel:ops", '{"type":"notice","text":"again"}'];
    const keyed = [...again, "--idempotency-key", "k1"];
    assert.equal(JSON.parse((await realtime(keyed, env)).stdout).offset, 2);
    const repeat = JSON.parse((await realtime(keyed, env)).stdout) as Record<string, unknown>;
    assert.equal(repeat.offset, 2);
    assert.equal(repeat.duplicate, true);

    // Read back as a pod would, with the same prefix.
    const broker = new RedisBroker({ url: redis.url, prefix, probeIntervalMs: 0 });
    try {
      const page = await broker.read("channel:ops" as ChannelName, 0, 10);
      assert.equal(page.epoch, one.epoch);
      assert.deepEqual(
        page.messages.map((m) => {
          const event = JSON.parse(m.data) as { type: string; text: string; channel: string };
          return [m.offset, event.type, event.channel, event.text];
        }),
        [
          [1, "notice", "channel:ops", "maintenance at 22:00"],
          [2, "notice", "channel:ops", "again"],
        ],
      );
    } finally {
      await broker.close();
    }
  });

  it("refuses a bad channel or event in one line before publishing", async () => {
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: `cli_${randomBytes(4).toString("hex")}` };
    for (const [args, pattern] of [
      [["publish", "room:x", '{"type":"a"}'], /invalid channel "room:x"/],
      [["publish", "channel:x", "{type:a}"], /the event must be JSON/],
      [["publish", "channel:x"], /usage: realtime publish/],
      [["publish", "channel:x", '{"type":"reset"}'], /reset/],
    ] as const) {
      const run = await realtime(args, env);
      assert.notEqual(run.code, 0, args.join(" "));
      assert.equal(run.stdout, "");
      assert.equal(lines(run.stderr).length, 1, run.stderr);
      assert.match(run.stderr, pattern);
    }
  });
});

describe("realtime publish and presence through the service's HTTP API", () => {
  let svc: RunningService;
  const streams: SseClient[] = [];
  before(async () => {
    svc = await startService({ PRESENCE_GRACE_MS: "100" });
  });
  after(async () => {
    for (const stream of streams) stream.close();
    await svc.stop();
  });
  const env = () => ({ JWT_SECRET: TEST_SECRET, REALTIME_URL: svc.url });

  it("publish without Redis goes through POST /api/publish with a minted service token", async () => {
    const ada = await svc.login("Ada");
    const stream = await openHttp1(`${svc.url}/api/events?channel=channel:cli-http`, {
      authorization: `Bearer ${ada.token}`,
    });
    streams.push(stream);
    const run = await realtime(["publish", "channel:cli-http", '{"type":"notice","n":7}'], env());
    assert.equal(run.code, 0, run.stderr);
    const answer = JSON.parse(run.stdout) as { channel: string; offset: number; via: string };
    assert.equal(answer.channel, "channel:cli-http");
    assert.equal(answer.via, "http");
    const event = await stream.waitFor((e) => e.data.includes('"notice"'));
    assert.equal((JSON.parse(event.data) as { n: number }).n, 7);
    // A token that may not publish: the service's refusal, in one line.
    const refused = await realtime(
      ["publish", "channel:cli-http", '{"type":"notice"}', "--token", ada.token],
      env(),
    );
    assert.equal(refused.code, 1);
    assert.equal(lines(refused.stderr).length, 1, refused.stderr);
    assert.match(refused.stderr, /: 403 RT_ERR_[A-Z_]+: /);
  });

  it("presence prints who is online in the room", async () => {
    const bob = await svc.login("Bob");
    const stream = await openHttp1(`${svc.url}/api/events?channel=channel:cli-room`, {
      authorization: `Bearer ${bob.token}`,
    });
    streams.push(stream);
    await svc.service.presence.flush();
    const run = await realtime(["presence", "channel:cli-room"], env());
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(lines(run.stdout), [
      "channel:cli-room: 1 online",
      `  ${bob.user.id}\tBob\t1 stream(s)`,
    ]);
    const json = await realtime(["presence", "channel:cli-room", "--json"], env());
    const snapshot = JSON.parse(json.stdout) as { users: { userId: string }[]; total: number };
    assert.equal(snapshot.total, 1);
    assert.equal(snapshot.users[0]?.userId, bob.user.id);
    // Nothing listening there: one line naming what failed.
    const closed = await freePort();
    const nowhere = await realtime(
      ["presence", "channel:cli-room", "--url", `http://127.0.0.1:${closed}`],
      env(),
    );
    assert.equal(nowhere.code, 1);
    assert.deepEqual(lines(nowhere.stderr).length, 1, nowhere.stderr);
    assert.match(
      nowhere.stderr,
      new RegExp(
        `^realtime: GET http://127\\.0\\.0\\.1:${closed}/api/channels/.* failed: ECONNREFUSED$`,
        "m",
      ),
    );
  });
});
