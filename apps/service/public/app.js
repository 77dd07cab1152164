// Minimal demo: dev login (sets the HttpOnly session cookie), one EventSource carrying
// channel:general and user:<me>, and POSTs for new messages. The browser's EventSource
// reconnects by itself and resumes with Last-Event-ID.
const $ = (id) => document.getElementById(id);
let source = null;

// Whether this browser signed in before. Only then is the session probed on load, so a
// signed-out visitor does not get a 401 "Failed to load resource" in the console every time.
const SIGNED_IN = "realtime.signedIn";
function remember(signedIn) {
  try {
    if (signedIn) localStorage.setItem(SIGNED_IN, "1");
    else localStorage.removeItem(SIGNED_IN);
  } catch {}
}
function remembered() {
  try {
    return localStorage.getItem(SIGNED_IN) === "1";
  } catch {
    return true; // no storage: probe, as if signed in before
  }
}

function line(text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  $("log").append(li);
  li.scrollIntoView({ block: "end" });
}

function listen(user) {
  $("me").textContent = `${user.name} (${user.id})`;
  $("login").hidden = true;
  $("chat").hidden = false;
  const url = `/api/events?channel=channel:general&channel=user:${encodeURIComponent(user.id)}`;
  source = new EventSource(url);
  source.onopen = () => {
    $("status").textContent = "connected";
  };
  source.onerror = () => {
    $("status").textContent = "reconnecting…";
  };
  source.onmessage = (e) => {
    const event = JSON.parse(e.data);
    if (event.type === "chat") line(`${event.userName}: ${event.content}`);
    else line(`${event.type} on ${event.channel}`, "system");
  };
  source.addEventListener("reset", (e) => {
    const { channel } = JSON.parse(e.data);
    line(`some earlier events of ${channel} could not be replayed`, "system");
  });
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const res = await fetch("/api/auth/dev-login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: $("name").value }),
  });
  const body = await res.json();
  if (!res.ok) {
    $("status").textContent = `${body.code}: ${body.message}`;
    return;
  }
  remember(true);
  listen(body.user);
});

$("send").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("message");
  const res = await fetch("/api/chat/messages", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ channel: "general", content: input.value }),
  });
  if (res.ok) input.value = "";
  else {
    const body = await res.json();
    line(`not sent: ${body.message}`, "system");
  }
});

if (remembered()) {
  fetch("/api/auth/me")
    .then(async (res) => {
      if (res.ok) listen((await res.json()).user);
      else remember(false);
    })
    .catch(() => {
      $("status").textContent = "server unreachable";
    });
}
