/**
 * A small streaming reader of tar archives (POSIX ustar, with pax and GNU long names), enough for
 * npm package tarballs: entries come one at a time, and a file's contents can be streamed (to a
 * file) without holding the archive in memory.
 *
 * @module
 */

const BLOCK = 512;

/** One entry of a tar archive. */
export interface TarEntry {
  /** Its path in the archive (`package/Plugins/Linux/x64/libx.so`). */
  name: string;
  /** `file`, `directory`, or `other` (links, devices). */
  kind: "file" | "directory" | "other";
  /** Size of its contents in bytes. */
  size: number;
  /** Permission bits. */
  mode: number;
  /**
   * Its contents, in chunks; read them before asking for the next entry (contents left unread are
   * skipped).
   */
  chunks(): AsyncGenerator<Uint8Array>;
}

/** Thrown for an archive that is not a valid tar file. */
export class TarError extends Error {}

/** The entries of a tar archive read from `stream` (uncompressed: pipe gzip through first). */
export async function* readTar(stream: ReadableStream<Uint8Array>): AsyncGenerator<TarEntry> {
  const input = new ByteReader(stream);
  let longName: string | undefined;
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  try {
    while (true) {
      const header = await input.read(BLOCK);
      if (header === undefined || header.every((byte) => byte === 0)) return;
      if (header.length < BLOCK) throw new TarError("Truncated tar header");
      checkChecksum(header);
      const type = String.fromCharCode(header[156] || 0x30);
      const size = paxSize ?? readNumber(header, 124, 12);
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      if (type === "L" || type === "x" || type === "g") {
        const data = await input.read(padded);
        if (data === undefined || data.length < padded) throw new TarError("Truncated tar entry");
        const text = new TextDecoder().decode(data.subarray(0, size));
        if (type === "L") longName = text.replace(/\0+$/, "");
        if (type === "x") {
          const pax = parsePax(text);
          paxPath = pax.path ?? paxPath;
          paxSize = pax.size === undefined ? paxSize : Number(pax.size);
        }
        continue;
      }
      const prefix = readString(header, 345, 155);
      const base = readString(header, 0, 100);
      const isUstar = readString(header, 257, 5) === "ustar";
      const name = paxPath ?? longName ?? (isUstar && prefix ? `${prefix}/${base}` : base);
      longName = paxPath = paxSize = undefined;
      let left = size;
      const entry: TarEntry = {
        name,
        kind: type === "0" || type === "7" ? "file" : type === "5" ? "directory" : "other",
        size,
        mode: readNumber(header, 100, 8),
        async *chunks() {
          while (left > 0) {
            const chunk = await input.readSome(left);
            if (chunk === undefined) throw new TarError(`Truncated tar entry "${name}"`);
            left -= chunk.length;
            yield chunk;
          }
        },
      };
      yield entry;
      // Whatever the reader left of the contents, then the padding to the next block.
      await input.skip(left + (padded - size));
      left = 0;
    }
  } finally {
    await input.cancel();
  }
}

/** A tar entry's contents as one array (for small entries). */
export async function readAll(entry: TarEntry): Promise<Uint8Array> {
  const bytes = new Uint8Array(entry.size);
  let offset = 0;
  for await (const chunk of entry.chunks()) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

function checkChecksum(header: Uint8Array): void {
  const stored = readNumber(header, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
  if (sum !== stored) throw new TarError("Invalid tar header checksum");
}

function readString(header: Uint8Array, offset: number, length: number): string {
  const field = header.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end === -1 ? field : field.subarray(0, end));
}

/** An octal field, or a base-256 one (high bit set, for sizes of 8 GiB and more). */
function readNumber(header: Uint8Array, offset: number, length: number): number {
  const field = header.subarray(offset, offset + length);
  if (field[0] & 0x80) {
    let value = field[0] & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + field[i];
    return value;
  }
  const text = readString(header, offset, length).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarError(`Invalid number in tar header: "${text}"`);
  return parseInt(text, 8);
}

/** Pax extended header records: `<length> <key>=<value>\n`. */
function parsePax(text: string): Record<string, string> {
  const records: Record<string, string> = {};
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  while (offset < bytes.length) {
    const space = bytes.indexOf(0x20, offset);
    if (space === -1) break;
    const length = Number(new TextDecoder().decode(bytes.subarray(offset, space)));
    if (!Number.isInteger(length) || length <= 0) throw new TarError("Invalid pax header");
    const record = new TextDecoder().decode(bytes.subarray(space + 1, offset + length - 1));
    const equals = record.indexOf("=");
    if (equals > 0) records[record.slice(0, equals)] = record.slice(equals + 1);
    offset += length;
  }
  return records;
}

/** Reads a byte stream by counts, across chunk boundaries. */
class ByteReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #pending: Uint8Array = new Uint8Array(0);
  #done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** At most `limit` bytes (at least one), or undefined at the end of the stream. */
  async readSome(limit: number): Promise<Uint8Array | undefined> {
    while (this.#pending.length === 0) {
      if (this.#done) return undefined;
      const { value, done } = await this.#reader.read();
      if (done) this.#done = true;
      else this.#pending = value;
    }
    const chunk = this.#pending.subarray(0, limit);
    this.#pending = this.#pending.subarray(chunk.length);
    return chunk;
  }

  /** Exactly `count` bytes, fewer at the end of the stream, undefined when none are left. */
  async read(count: number): Promise<Uint8Array | undefined> {
    const bytes = new Uint8Array(count);
    let offset = 0;
    while (offset < count) {
      const chunk = await this.readSome(count - offset);
      if (chunk === undefined) break;
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
    return offset === 0 && count > 0 ? undefined : bytes.subarray(0, offset);
  }

  /** Skips `count` bytes. */
  async skip(count: number): Promise<void> {
    while (count > 0) {
      const chunk = await this.readSome(count);
      if (chunk === undefined) throw new TarError("Truncated tar archive");
      count -= chunk.length;
    }
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}
