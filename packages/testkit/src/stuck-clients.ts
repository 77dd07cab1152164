/**
 * A separate process of HTTP/2 SSE clients that stop reading, for memory.test.ts, so that the
 * test's own process holds only the server (and one reading client) when it measures memory.
 *
 * argv: <url> <path> <token> <sessions> <streams per session>. Prints `ready <n>` once every
 * stream has its response headers and is paused, then `closed <n>` as the server drops them;
 * exits when stdin closes.
 */
import http2 from "node:http2";

const [url, path, token, sessionsText, perSessionText] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const sessions = Number(sessionsText);
const perSession = Number(perSessionText);
let closed = 0;

const opened: Promise<void>[] = [];
for (let s = 0; s < sessions; s++) {
  const session = http2.connect(url);
  session.on("error", () => {});
  for (let i = 0; i < perSession; i++) {
    opened.push(
      new Promise((resolve, reject) => {
        const stream = session.request({
          ":path": path,
          accept: "text/event-stream",
          authorization: `Bearer ${token}`,
        });
        stream.on("error", () => {});
        stream.once("response", (headers) => {
          if (headers[":status"] !== 200) reject(new Error(`status ${headers[":status"]}`));
          // Never read: the flow-control window fills and the server must hold the rest.
          stream.pause();
          resolve();
        });
        stream.once("close", () => {
          closed++;
          process.stdout.write(`closed ${closed}\n`);
        });
        stream.end();
      }),
    );
  }
}
await Promise.all(opened);
process.stdout.write(`ready ${opened.length}\n`);
process.stdin.resume();
process.stdin.once("end", () => process.exit(0));
