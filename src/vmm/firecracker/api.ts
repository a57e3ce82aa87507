/**
 * A minimal HTTP/1.1 client for Firecracker's API on its unix socket: one
 * request per connection, JSON bodies, and errors that carry Firecracker's
 * own `fault_message`.
 *
 * @module
 */

/** One API call: method, path and optional JSON body. */
export interface ApiRequest {
  method: "GET" | "PUT" | "PATCH";
  path: string;
  body?: unknown;
}

/** The status and parsed body of an answer. */
export interface ApiResponse {
  status: number;
  body: unknown;
}

/** Firecracker refused a request; `faultMessage` is its explanation. */
export class FirecrackerApiError extends Error {
  constructor(
    readonly request: ApiRequest,
    readonly status: number,
    readonly faultMessage: string,
  ) {
    super(
      `Firecracker refused ${request.method} ${request.path} (HTTP ${status}): ${faultMessage}`,
    );
    this.name = "FirecrackerApiError";
  }
}

/** How long one request may take before the connection is dropped. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Answers larger than this are not Firecracker's. */
const MAX_RESPONSE_BYTES = 1 << 20;

/**
 * Sends `request` to the API socket at `socket` and returns the answer.
 *
 * Requires read and write permission for `socket` (Deno's rule for unix
 * sockets). Throws {@linkcode FirecrackerApiError} for a status of 400 or
 * above, with the `fault_message` of the body.
 */
export async function apiCall(
  socket: string,
  request: ApiRequest,
): Promise<ApiResponse> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  const timer = setTimeout(() => conn.close(), REQUEST_TIMEOUT_MS);
  try {
    await writeAll(conn, encodeRequest(request));
    const response = await readResponse(conn);
    if (response.status >= 400) {
      const fault = (response.body as { fault_message?: unknown } | undefined)
        ?.fault_message;
      throw new FirecrackerApiError(
        request,
        response.status,
        typeof fault === "string" ? fault : JSON.stringify(response.body),
      );
    }
    return response;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Closed by the timeout already.
    }
  }
}

/** Encodes `request` as an HTTP/1.1 message. */
export function encodeRequest(request: ApiRequest): Uint8Array {
  const body = request.body === undefined
    ? new Uint8Array()
    : new TextEncoder().encode(JSON.stringify(request.body));
  const head = [
    `${request.method} ${request.path} HTTP/1.1`,
    "Host: localhost",
    "Accept: application/json",
    ...(request.body === undefined ? [] : [
      "Content-Type: application/json",
      `Content-Length: ${body.byteLength}`,
    ]),
    "",
    "",
  ].join("\r\n");
  const headBytes = new TextEncoder().encode(head);
  const message = new Uint8Array(headBytes.byteLength + body.byteLength);
  message.set(headBytes);
  message.set(body, headBytes.byteLength);
  return message;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.byteLength) {
    written += await conn.write(data.subarray(written));
  }
}

/**
 * Reads one response: headers, then exactly Content-Length bytes (or up
 * to the end of the stream when the server sends no length).
 */
async function readResponse(conn: Deno.Conn): Promise<ApiResponse> {
  let buffer = new Uint8Array();
  const chunk = new Uint8Array(16 * 1024);
  let headerEnd = -1;
  let contentLength: number | undefined;
  let status = 0;
  while (true) {
    const n = await conn.read(chunk);
    if (n !== null) {
      const next = new Uint8Array(buffer.byteLength + n);
      next.set(buffer);
      next.set(chunk.subarray(0, n), buffer.byteLength);
      buffer = next;
      if (buffer.byteLength > MAX_RESPONSE_BYTES) {
        throw new Error("Cannot read Firecracker's answer: it is too large");
      }
    }
    if (headerEnd < 0) {
      headerEnd = indexOfCrlfCrlf(buffer);
      if (headerEnd >= 0) {
        const head = new TextDecoder().decode(buffer.subarray(0, headerEnd));
        const [statusLine, ...headers] = head.split("\r\n");
        status = Number(statusLine?.match(/^HTTP\/1\.[01] (\d{3})/)?.[1]);
        if (!status) {
          throw new Error(
            `Cannot read Firecracker's answer: bad status line "${statusLine}"`,
          );
        }
        for (const header of headers) {
          const [name, value] = splitHeader(header);
          if (name === "content-length") contentLength = Number(value);
        }
        if (status === 204 || status === 304) contentLength ??= 0;
      }
    }
    if (headerEnd >= 0) {
      const bodyBytes = buffer.subarray(headerEnd + 4);
      if (
        contentLength !== undefined && bodyBytes.byteLength >= contentLength
      ) {
        return {
          status,
          body: parseBody(bodyBytes.subarray(0, contentLength)),
        };
      }
      if (n === null) return { status, body: parseBody(bodyBytes) };
    } else if (n === null) {
      throw new Error(
        "Cannot read Firecracker's answer: the connection closed before the headers ended",
      );
    }
  }
}

function splitHeader(line: string): [string, string] {
  const colon = line.indexOf(":");
  return colon < 0
    ? [line.toLowerCase(), ""]
    : [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
}

function indexOfCrlfCrlf(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.byteLength; i++) {
    if (
      bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 &&
      bytes[i + 3] === 10
    ) return i;
  }
  return -1;
}

function parseBody(bytes: Uint8Array): unknown {
  const text = new TextDecoder().decode(bytes).trim();
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
