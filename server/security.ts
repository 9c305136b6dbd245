/**
 * What keeps the editor's server to its folder and its user: the session token, paths confined to
 * the served folder (no `..`, no absolute paths, no symbolic links out), request size limits and
 * JSON bodies checked before use.
 *
 * @module
 */

import { isAbsolute, join, relative, sep } from "node:path";
import { quote } from "../runtime/quote.ts";

/** An error answered with an HTTP status and a message for the page (never a stack trace). */
export class HttpError extends Error {
  /** The HTTP status. */
  readonly status: number;

  /** Makes an error with a status and a sentence-case message. */
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

/** The cookie the page carries the token in (set when the page is opened with `?token=`). */
export const TOKEN_COOKIE = "cogflow_token";

/** The header programs may send the token in instead. */
export const TOKEN_HEADER = "x-cogflow-token";

/** The largest request body the server reads (1 MiB). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** A fresh random token: 32 bytes as hex. */
export function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The token a request carries: its header, else its cookie. */
export function requestToken(request: Request): string | undefined {
  const header = request.headers.get(TOKEN_HEADER);
  if (header) return header;
  const cookies = request.headers.get("cookie") ?? "";
  for (const part of cookies.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === TOKEN_COOKIE) return value.join("=");
  }
  return undefined;
}

/** Compares tokens in time independent of where they differ. */
export function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined || given.length !== token.length) return false;
  let difference = 0;
  for (let i = 0; i < token.length; i++) difference |= given.charCodeAt(i) ^ token.charCodeAt(i);
  return difference === 0;
}

/** Throws a 401 unless the request carries the token. */
export function requireToken(request: Request, token: string): void {
  if (!sameToken(requestToken(request), token)) {
    throw new HttpError(
      401,
      "Missing or wrong token: open the address that `cogflow serve` printed",
    );
  }
}

/**
 * The real path of `path` (relative to the served folder `root`, itself a real path), refused
 * unless it stays inside `root`: absolute paths, `..` segments, and links that resolve outside are
 * errors (403); a missing file is 404.
 */
export async function confinedPath(root: string, path: unknown): Promise<string> {
  if (typeof path !== "string" || path === "" || path.includes("\0")) {
    throw new HttpError(400, "Expected a relative path (text)");
  }
  if (isAbsolute(path) || /^[a-zA-Z]:/.test(path) || path.startsWith("\\")) {
    throw new HttpError(403, `Path ${quote(path)} is absolute: give it relative to the folder`);
  }
  if (path.split(/[\\/]/).includes("..")) {
    throw new HttpError(403, `Path ${quote(path)} leaves the served folder`);
  }
  let real: string;
  try {
    real = await Deno.realPath(join(root, path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new HttpError(404, `No file ${quote(path)} in the served folder`);
    }
    throw error;
  }
  if (!isInside(real, root)) {
    throw new HttpError(403, `Path ${quote(path)} leads outside the served folder`);
  }
  return real;
}

/** True when `path` is `folder` or inside it (both absolute, normalized). */
export function isInside(path: string, folder: string): boolean {
  const rel = relative(folder, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

/** Reads a JSON object body of at most `limit` bytes; 413 when larger, 400 when not JSON. */
export async function readJsonBody(
  request: Request,
  limit = MAX_BODY_BYTES,
): Promise<Record<string, unknown>> {
  const type = request.headers.get("content-type") ?? "";
  if (!type.startsWith("application/json")) {
    throw new HttpError(415, "Expected a JSON body (Content-Type: application/json)");
  }
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > limit) throw tooLarge(limit);
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    for await (const chunk of request.body) {
      size += chunk.byteLength;
      if (size > limit) throw tooLarge(limit);
      chunks.push(chunk);
    }
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new HttpError(400, "Invalid JSON in the request body");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, "Expected a JSON object in the request body");
  }
  return value as Record<string, unknown>;
}

function tooLarge(limit: number): HttpError {
  return new HttpError(413, `Request body too large: at most ${limit} bytes`);
}

/** True for addresses that only this machine reaches. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" ||
    /^127\.\d+\.\d+\.\d+$/.test(host);
}
