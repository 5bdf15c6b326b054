// The gateway's API as the dashboard uses it: the login token in sessionStorage, sent as a bearer
// token on every call; errors arrive in OpenAI's shape and become ApiError with their message.

const TOKEN = "llmproxy.token";
const ROLE = "llmproxy.role";
const USER = "llmproxy.user";

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get role() { return sessionStorage.getItem(ROLE) || "user"; },
  get user() { return sessionStorage.getItem(USER) || ""; },
  get isAdmin() { return this.role === "admin"; },
  save(token, role, user) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(ROLE, role);
    sessionStorage.setItem(USER, user);
  },
  clear() {
    for (const name of [TOKEN, ROLE, USER]) sessionStorage.removeItem(name);
  },
};

// Set by app.js: what to do when the token is refused (expired, password changed...).
let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

export function authHeaders(extra = {}) {
  const headers = { ...extra };
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  return headers;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  let code = null;
  try {
    const body = await response.json();
    if (body && body.error) {
      message = body.error.message || message;
      code = body.error.code || null;
    }
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(response.status, message, code);
}

export async function api(method, path, body) {
  const init = { method, headers: authHeaders() };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const error = await failure(response);
    if (response.status === 401 && session.token) onUnauthorized(error);
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

export async function login(username, password) {
  const response = await fetch("/admin/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) throw await failure(response);
  const data = await response.json();
  session.save(data.access_token, data.role, username);
  return data;
}

// A streaming or plain chat completion; returns the raw Response so the caller reads its headers
// and its body (a stream of SSE events when stream is true).
export async function chat(body, signal) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: authHeaders({ "content-type": "application/json" }),
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) {
    const error = await failure(response);
    if (response.status === 401 && session.token) onUnauthorized(error);
    throw error;
  }
  return response;
}

// Server-sent events from a fetch body: yields each `data:` payload (the text after "data:").
export async function* sseData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart());
      if (data.length) yield data.join("\n");
    }
  }
}
