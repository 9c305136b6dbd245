/**
 * Where the queue lives: the Redis URL (`--redis`, then `COGFLOW_REDIS_URL`, then loopback), the
 * queue name, Redis connections for BullMQ, and masking, so that no message ever shows a password.
 *
 * @module
 */

import { Redis } from "ioredis";
import { quote } from "../engine/mod.ts";
import { UserError } from "../runtime/user_error.ts";

/** Redis on loopback, Redis's own port. */
export const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379";

/** The queue every command uses unless `--queue` or `COGFLOW_QUEUE` names another. */
export const DEFAULT_QUEUE = "cogflow";

/** Command-line options of every queue command. */
export const CONNECTION_OPTIONS = {
  redis: { type: "string" },
  queue: { type: "string" },
} as const;

/** Where to connect, as the commands' options and the environment say. */
export interface QueueTarget {
  /** The Redis URL, password included: never print it, print {@link maskUrl} of it. */
  url: string;
  /** The BullMQ queue name. */
  queue: string;
}

/** The target from `--redis` / `--queue`, else `COGFLOW_REDIS_URL` / `COGFLOW_QUEUE`, else defaults. */
export function queueTarget(options: { redis?: string; queue?: string }): QueueTarget {
  const url = options.redis ?? env("COGFLOW_REDIS_URL") ?? DEFAULT_REDIS_URL;
  const queue = options.queue ?? env("COGFLOW_QUEUE") ?? DEFAULT_QUEUE;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UserError(`Invalid Redis URL ${quote(maskUrl(url))}: expected redis://host:port`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new UserError(
      `Invalid Redis URL ${quote(maskUrl(url))}: expected redis:// or rediss://`,
    );
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(queue)) {
    throw new UserError(
      `Invalid queue name ${quote(queue)}: expected letters, digits, "_", "." and "-"`,
    );
  }
  return { url, queue };
}

/** The URL with its password (and a user name, which may be a token) replaced by `***`. */
export function maskUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/)([^@/]*)@/i, (_all, scheme, credentials: string) => {
    const colon = credentials.indexOf(":");
    const user = colon < 0 ? "" : credentials.slice(0, colon);
    return `${scheme}${user ? `${user}:` : ""}***@`;
  });
}

/** `text` with the URL's password, wherever it appears, replaced by `***`. */
export function maskSecrets(text: string, url: string): string {
  let masked = text.split(url).join(maskUrl(url));
  for (const secret of secretsOf(url)) {
    if (secret.length >= 3) masked = masked.split(secret).join("***");
  }
  return masked;
}

/**
 * A Redis connection for BullMQ (no retry limit per request, as BullMQ requires; reconnects after
 * a restart). Connection errors go to `onError`, masked.
 */
export function connectRedis(url: string, onError?: (message: string) => void): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: null });
  client.on("error", (error: Error) => onError?.(maskSecrets(error.message, url)));
  return client;
}

/**
 * Checks that Redis answers at `url` within `timeoutMs`; throws {@link UserError} saying so
 * (password masked) when it does not. The queue commands call this first, so that an unreachable
 * Redis is one clear message instead of endless reconnection.
 */
export async function checkRedis(url: string, timeoutMs = 3000): Promise<void> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  let lastError = "";
  client.on("error", (error: Error) => lastError = error.message);
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw new UserError(
        `Cannot reach Redis at ${quote(maskUrl(url))}: this process may not use the network: ` +
          "run the queue's commands with deno task cogflow-queue",
      );
    }
    const detail = maskSecrets((error as Error).message || lastError || "no answer", url);
    throw new UserError(`Cannot reach Redis at ${quote(maskUrl(url))}: ${detail}`);
  } finally {
    client.disconnect();
  }
}

function secretsOf(url: string): string[] {
  try {
    const parsed = new URL(url);
    return [parsed.password, decodeURIComponent(parsed.password)].filter(Boolean);
  } catch {
    return [];
  }
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}
