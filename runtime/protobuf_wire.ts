/**
 * A small reader of the protobuf wire format: walks the fields of a message and hands back
 * where each one lies, so that large fields (weights) can be skipped by length instead of
 * decoded. Files are read in chunks, so a message of gigabytes never sits in memory.
 *
 * @module
 */

/** Wire type of varint fields (int32, int64, bool, enum). */
export const WIRE_VARINT = 0;
/** Wire type of 8-byte fields (fixed64, double). */
export const WIRE_FIXED64 = 1;
/** Wire type of length-delimited fields (strings, bytes, messages, packed repeated). */
export const WIRE_LENGTH = 2;
/** Wire type of 4-byte fields (fixed32, float). */
export const WIRE_FIXED32 = 5;

/** Bytes that can be read at any offset: a file read in chunks, or an array in memory. */
export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** Copies `length` bytes from `offset`; throws a {@link WireError} past the end. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** Malformed wire data: the offset says where. */
export class WireError extends Error {
  /** Byte offset of the problem, from the start of the source. */
  readonly offset: number;

  /** Makes an error about the data at `offset`. */
  constructor(message: string, offset: number) {
    super(message);
    this.name = "WireError";
    this.offset = offset;
  }
}

/** One field of a message, located in the source. */
export interface WireField {
  /** Field number. */
  readonly field: number;
  /** Wire type: {@link WIRE_VARINT}, {@link WIRE_FIXED64}, {@link WIRE_LENGTH} or {@link WIRE_FIXED32}. */
  readonly wireType: number;
  /** Offset of the field's tag. */
  readonly start: number;
  /** Offset of the value: for length-delimited fields, the first byte after the length. */
  readonly valueStart: number;
  /** Offset just past the field. */
  readonly end: number;
  /** The value of a varint field (other wire types: 0). */
  readonly varint: bigint;
}

/** A {@link ByteSource} over bytes in memory. */
export function bytesSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.byteLength,
    read(offset: number, length: number): Promise<Uint8Array> {
      if (offset < 0 || length < 0 || offset + length > bytes.byteLength) {
        return Promise.reject(new WireError(`Read of ${length} bytes past the end`, offset));
      }
      return Promise.resolve(bytes.slice(offset, offset + length));
    },
  };
}

/**
 * A {@link ByteSource} over an open file, read through a window of `chunkSize` bytes.
 * The window is small because most reads are field headers between skipped weights.
 */
export class FileSource implements ByteSource {
  readonly size: number;
  #file: Deno.FsFile;
  #chunkSize: number;
  #windowStart = 0;
  #window: Uint8Array = new Uint8Array(0);

  /** Wraps an open file of `size` bytes; the caller closes it with {@link FileSource.close}. */
  constructor(file: Deno.FsFile, size: number, chunkSize = 1 << 16) {
    this.#file = file;
    this.size = size;
    this.#chunkSize = chunkSize;
  }

  /** Opens a file for reading. */
  static async open(path: string, chunkSize?: number): Promise<FileSource> {
    const file = await Deno.open(path, { read: true });
    try {
      const { size } = await file.stat();
      return new FileSource(file, size, chunkSize);
    } catch (error) {
      file.close();
      throw error;
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new WireError(`Read of ${length} bytes past the end`, offset);
    }
    const windowEnd = this.#windowStart + this.#window.byteLength;
    if (offset >= this.#windowStart && offset + length <= windowEnd) {
      return this.#window.slice(offset - this.#windowStart, offset - this.#windowStart + length);
    }
    if (length > this.#chunkSize) return await this.#readDirect(offset, length);
    this.#window = await this.#readDirect(offset, Math.min(this.#chunkSize, this.size - offset));
    this.#windowStart = offset;
    return this.#window.slice(0, length);
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }

  async #readDirect(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    await this.#file.seek(offset, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < length) {
      const count = await this.#file.read(out.subarray(filled));
      if (count === null) throw new WireError(`File ended after ${offset + filled} bytes`, offset);
      filled += count;
    }
    return out;
  }
}

/** Decodes a varint at `position`; returns the value and the offset after it. */
export function decodeVarint(bytes: Uint8Array, position: number, base = 0): [bigint, number] {
  let value = 0n;
  let shift = 0n;
  for (let i = position; i < bytes.byteLength && i < position + 10; i++) {
    const byte = bytes[i];
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [BigInt.asUintN(64, value), i + 1];
    shift += 7n;
  }
  throw new WireError("Truncated or overlong varint", base + position);
}

/**
 * Walks the fields of the message in `[start, end)` of `source`, in order.
 * Length-delimited values are not read: the caller reads, descends into or skips them.
 */
export async function* readFields(
  source: ByteSource,
  start = 0,
  end = source.size,
): AsyncGenerator<WireField> {
  let position = start;
  while (position < end) {
    // A tag and a length are two varints: 20 bytes cover both.
    const head = await source.read(position, Math.min(20, end - position));
    const field = parseField(head, position, end);
    yield field;
    position = field.end;
  }
}

/** Walks the fields of a message held in memory; offsets are relative to `bytes`. */
export function* fieldsOf(bytes: Uint8Array): Generator<WireField> {
  let position = 0;
  while (position < bytes.byteLength) {
    const field = parseField(bytes.subarray(position, position + 20), position, bytes.byteLength);
    yield field;
    position = field.end;
  }
}

function parseField(head: Uint8Array, start: number, end: number): WireField {
  const [tag, afterTag] = decodeVarint(head, 0, start);
  const field = Number(tag >> 3n);
  const wireType = Number(tag & 7n);
  if (field === 0) throw new WireError("Field number 0 is invalid", start);
  let valueStart = start + afterTag;
  let fieldEnd: number;
  let varint = 0n;
  switch (wireType) {
    case WIRE_VARINT: {
      const [value, after] = decodeVarint(head, afterTag, start);
      varint = value;
      fieldEnd = start + after;
      break;
    }
    case WIRE_FIXED64:
      fieldEnd = valueStart + 8;
      break;
    case WIRE_LENGTH: {
      const [length, after] = decodeVarint(head, afterTag, start);
      valueStart = start + after;
      if (length > BigInt(end - valueStart)) {
        throw new WireError(
          `Field ${field} declares ${length} bytes but only ${end - valueStart} remain`,
          start,
        );
      }
      fieldEnd = valueStart + Number(length);
      break;
    }
    case WIRE_FIXED32:
      fieldEnd = valueStart + 4;
      break;
    default:
      throw new WireError(`Field ${field} has invalid wire type ${wireType}`, start);
  }
  if (fieldEnd > end) throw new WireError(`Field ${field} runs past the end of its message`, start);
  return { field, wireType, start, valueStart, end: fieldEnd, varint };
}

/** Reads the value bytes of a length-delimited field. */
export function readValue(source: ByteSource, field: WireField): Promise<Uint8Array> {
  return source.read(field.valueStart, field.end - field.valueStart);
}

/** Reads a whole field, tag included: concatenated fields decode as one message. */
export function readWhole(source: ByteSource, field: WireField): Promise<Uint8Array> {
  return source.read(field.start, field.end - field.start);
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const part of parts) total += part.byteLength;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}
