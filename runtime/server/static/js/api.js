// Talking to the mnm API. Every failure becomes an ApiError carrying the server's one-line message
// (its JSON body {"error", "type", "status"}) and, for an overload, the Retry-After delay.

export class ApiError extends Error {
  constructor(message, { status = 0, type = "", retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.retryAfter = retryAfter;
  }
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  let type = "";
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") {
      message = body.error;
      type = body.type || "";
    }
  } catch {
    // not JSON (a proxy's page, say): the status line is the message
  }
  const retry = Number.parseFloat(response.headers.get("Retry-After"));
  return new ApiError(message, {
    status: response.status, type, retryAfter: Number.isFinite(retry) ? retry : null,
  });
}

async function send(path, options) {
  try {
    return await fetch(path, options);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(`cannot reach the server (${error.message})`);
  }
}

// POST a form; the answer's image as a Blob, with the round trip and the server's own time in ms.
export async function postForm(path, form, signal) {
  const start = performance.now();
  const response = await send(path, { method: "POST", body: form, signal });
  if (!response.ok) throw await errorOf(response);
  const blob = await response.blob();
  return {
    blob,
    totalMs: performance.now() - start,
    serverMs: Number.parseFloat(response.headers.get("X-Elapsed-Ms")),
  };
}

export async function getJSON(path) {
  const response = await send(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

// Words for a person: what failed and what the server said; an overload says when to retry
// (``retrying``: the page retries by itself).
export function explain(what, error, retrying = false) {
  if (error.status === 503) {
    const wait = retryDelayS(error);
    return `The server is busy (${error.message}). ${retrying ? "Trying" : "Try"} again in ${wait} s.`;
  }
  return `${what}: ${error.message}`;
}

export function retryDelayS(error) {
  return Math.max(1, Math.ceil(error.retryAfter ?? 1));
}

export function formatMs(ms) {
  return Number.isFinite(ms) ? `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms` : "–";
}
