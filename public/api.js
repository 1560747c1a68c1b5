// The Worker's JSON API on the same origin, and the server's clock as seen
// through it.

// Sent as "Authorization: Bearer <token>" on POST requests when set, for a
// deployment with API_TOKEN.
export const credentials = { token: "" };
const clock = { offsetMs: 0 }; // server clock minus this clock, from the Date header

export class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }

  describe() {
    return this.code ? `${this.message} (${this.code})` : this.message;
  }
}

// Sends one request and returns the parsed JSON body; throws ApiError with
// the API's own error message and code when the status is not 2xx.
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method === "POST" && credentials.token) headers.Authorization = `Bearer ${credentials.token}`;

  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(`the API could not be reached: ${error.message}`, "NETWORK_ERROR", 0);
  }

  noteServerClock(response);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // A non-JSON body, such as the platform's "error code: 1101" page.
  }
  if (!response.ok) {
    if (data && typeof data.error === "string" && typeof data.code === "string") {
      throw new ApiError(data.error, data.code, response.status);
    }
    throw new ApiError(`HTTP ${response.status} ${text.slice(0, 80)}`.trim(), `HTTP_${response.status}`, response.status);
  }
  return data;
}

// Ages are computed against the server's clock when this one is clearly off.
// The Date header has whole seconds, so small differences are ignored.
function noteServerClock(response) {
  const serverTime = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(serverTime)) return;
  const offset = serverTime - Date.now();
  clock.offsetMs = Math.abs(offset) > 2000 ? offset : 0;
}

export function serverNow() {
  return Date.now() + clock.offsetMs;
}
