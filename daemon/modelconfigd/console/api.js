// The JSON API over HTTP (protobuf's JSON mapping): one fetch wrapper that adds the bearer token
// and the change reason, and turns a google.rpc.Status body into an ApiError.

const TOKEN_KEY = "modelconfig.token";

export const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
  "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** A refusal from the daemon: its google.rpc.Status, with the ErrorInfo reason pulled out. */
export class ApiError extends Error {
  constructor(httpStatus, status) {
    super(status.message || `HTTP ${httpStatus}`);
    this.httpStatus = httpStatus;
    this.code = status.code ?? 0;
    this.codeName = CODE_NAMES[this.code] || `HTTP ${httpStatus}`;
    this.details = status.details || [];
    const info = this.details.find((d) => String(d["@type"]).endsWith("google.rpc.ErrorInfo"));
    this.reason = info ? info.reason : "";
    this.metadata = info ? info.metadata || {} : {};
    // BadRequest field violations and PreconditionFailure violations, as readable lines.
    this.violations = [];
    for (const d of this.details) {
      for (const v of d.fieldViolations || []) this.violations.push(`${v.field}: ${v.description}`);
      for (const v of d.violations || []) {
        this.violations.push([v.type, v.subject, v.description].filter(Boolean).join(" · "));
      }
    }
  }
}

function queryString(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "" || value === false) continue;
    for (const one of Array.isArray(value) ? value : [value]) params.append(key, String(one));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** Calls one route; resolves to the response's JSON, rejects with ApiError (or a network error). */
export async function call(method, path, { query, body, reason } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (reason) headers["X-Change-Reason"] = reason;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path + queryString(query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, { code: 14, message: `the daemon did not answer (${error.message})` });
  }
  const text = await response.text();
  let json = {};
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = { message: text.slice(0, 300) };
    }
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

export const get = (path, query) => call("GET", path, { query });

/** Every page of a paginated list: `field` names the repeated field of the response. */
export async function listAll(path, field, query = {}) {
  const items = [];
  let pageToken = "";
  for (let page = 0; page < 1000; page += 1) {
    const response = await get(path, { ...query, pageSize: 1000, pageToken });
    items.push(...(response[field] || []));
    pageToken = response.nextPageToken || "";
    if (!pageToken) break;
  }
  return items;
}

export const enc = encodeURIComponent;
