/**
 * What the video writer and the launcher's ffmpeg broker share: an encode request (numbers and
 * names from fixed lists, never command-line text), the one place that turns it into ffmpeg's
 * arguments, and the framing of messages on the broker's socket.
 *
 * A message is a 4-byte big-endian length and that many bytes of UTF-8 JSON. A request message
 * is followed by the raw frames; a reply `{ ok: true, size }` by the encoded file.
 *
 * @module
 */

/** What to encode: raw `rgb24` (3 channels) or `rgba` (4) frames to an MP4 or a GIF. */
export interface EncodeRequest {
  /** Output container: H.264 MP4 or looping GIF. */
  format: "mp4" | "gif";
  /** Frame width in pixels (even for MP4). */
  width: number;
  /** Frame height in pixels (even for MP4). */
  height: number;
  /** Bytes per pixel: 3 (`rgb24`) or 4 (`rgba`). */
  channels: 3 | 4;
  /** Frames per second. */
  fps: number;
  /** Number of frames that follow the request. */
  frames: number;
  /** x264 constant rate factor, 0 to 51 (MP4 only). */
  crf?: number;
  /** x264 preset (MP4 only). */
  preset?: string;
}

/** x264's presets, the only values the broker accepts. */
export const X264_PRESETS = [
  "ultrafast",
  "superfast",
  "veryfast",
  "faster",
  "fast",
  "medium",
  "slow",
  "slower",
  "veryslow",
  "placebo",
] as const;

/** Bounds the broker enforces on a request. */
export const ENCODE_LIMITS = {
  /** Largest width or height. */
  side: 16384,
  /** Most frames in one video. */
  frames: 100_000,
  /** Most bytes of raw frames in one request (32 GiB). */
  bytes: 32 * 1024 ** 3,
  /** Highest frame rate. */
  fps: 1000,
  /** Longest message (a request or a reply header). */
  message: 64 * 1024,
} as const;

/** The frame bytes a request announces. */
export function frameBytes(request: EncodeRequest): number {
  return request.width * request.height * request.channels * request.frames;
}

/**
 * Checks a request that came from another process; returns it (with only the known fields) or
 * the end of a sentence saying what is wrong.
 */
export function checkEncodeRequest(value: unknown): EncodeRequest | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "expected an object";
  }
  const request = value as Record<string, unknown>;
  const integer = (name: string, min: number, max: number): string | undefined => {
    const item = request[name];
    return Number.isInteger(item) && (item as number) >= min && (item as number) <= max
      ? undefined
      : `"${name}" must be a whole number from ${min} to ${max}`;
  };
  if (request.format !== "mp4" && request.format !== "gif") {
    return `"format" must be "mp4" or "gif"`;
  }
  const problem = integer("width", 1, ENCODE_LIMITS.side) ??
    integer("height", 1, ENCODE_LIMITS.side) ??
    integer("frames", 1, ENCODE_LIMITS.frames);
  if (problem) return problem;
  if (request.channels !== 3 && request.channels !== 4) return `"channels" must be 3 or 4`;
  const fps = request.fps;
  if (typeof fps !== "number" || !Number.isFinite(fps) || fps <= 0 || fps > ENCODE_LIMITS.fps) {
    return `"fps" must be a number above 0 and at most ${ENCODE_LIMITS.fps}`;
  }
  const checked: EncodeRequest = {
    format: request.format,
    width: request.width as number,
    height: request.height as number,
    channels: request.channels,
    fps,
    frames: request.frames as number,
  };
  if (frameBytes(checked) > ENCODE_LIMITS.bytes) {
    return `the frames must be at most ${ENCODE_LIMITS.bytes} bytes`;
  }
  if (checked.format === "mp4") {
    if (checked.width % 2 !== 0 || checked.height % 2 !== 0) {
      return "an MP4's width and height must be even";
    }
    const crf = request.crf ?? 18;
    if (typeof crf !== "number" || !Number.isFinite(crf) || crf < 0 || crf > 51) {
      return `"crf" must be a number from 0 to 51`;
    }
    const preset = request.preset ?? "medium";
    if (!(X264_PRESETS as readonly unknown[]).includes(preset)) {
      return `"preset" must be one of ${X264_PRESETS.join(", ")}`;
    }
    checked.crf = crf;
    checked.preset = preset as string;
  }
  return checked;
}

/**
 * ffmpeg's arguments for a request: raw frames on stdin, the encoded video written to `output`
 * (with an explicit `-f`, since that path may have no extension).
 *
 * MP4: libx264, `yuv420p`, BT.709 at limited range and tagged so (what players assume for HD
 * video), `+faststart` so that playback can start before the whole file is downloaded. GIF: one
 * palette computed from all frames (`palettegen`) and applied with dithering (`paletteuse`),
 * looping.
 */
export function ffmpegArgs(request: EncodeRequest, output: string): string[] {
  const input = [
    ...["-hide_banner", "-nostats", "-loglevel", "error"],
    ...["-f", "rawvideo", "-pix_fmt", request.channels === 3 ? "rgb24" : "rgba"],
    ...["-video_size", `${request.width}x${request.height}`],
    ...["-framerate", String(request.fps), "-i", "pipe:0"],
  ];
  const encoding = request.format === "mp4"
    ? [
      "-an",
      ...["-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p"],
      ...["-c:v", "libx264", "-preset", request.preset ?? "medium"],
      ...["-crf", String(request.crf ?? 18)],
      ...["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"],
      ...["-color_range", "tv", "-movflags", "+faststart", "-f", "mp4"],
    ]
    : [
      "-filter_complex",
      "[0:v]split[frames][forPalette];[forPalette]palettegen[palette];[frames][palette]paletteuse",
      ...["-loop", "0", "-f", "gif"],
    ];
  return [...input, ...encoding, "-y", output];
}

/** Writes one length-prefixed JSON message. */
export async function writeMessage(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  message: unknown,
): Promise<void> {
  const body = new TextEncoder().encode(JSON.stringify(message));
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, body.length);
  await writer.write(header);
  await writer.write(body);
}

/** Reads exact byte counts from a stream, keeping what a chunk holds beyond them. */
export class ByteReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #pending: Uint8Array = new Uint8Array(0);

  /** Reads from `stream`. */
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** The next `count` bytes; throws when the stream ends before. */
  async readExactly(count: number): Promise<Uint8Array> {
    const out = new Uint8Array(count);
    let filled = 0;
    while (filled < count) {
      const chunk = await this.#next(count - filled);
      out.set(chunk, filled);
      filled += chunk.length;
    }
    return out;
  }

  /** Passes the next `count` bytes to `write` chunk by chunk; throws when the stream ends before. */
  async forward(count: number, write: (chunk: Uint8Array) => Promise<void>): Promise<void> {
    let left = count;
    while (left > 0) {
      const chunk = await this.#next(left);
      await write(chunk);
      left -= chunk.length;
    }
  }

  /** The next message, of at most `limit` bytes. */
  async readMessage(limit: number = ENCODE_LIMITS.message): Promise<unknown> {
    const header = await this.readExactly(4);
    const length = new DataView(header.buffer).getUint32(0);
    if (length > limit) throw new Error(`Message of ${length} bytes is over the limit of ${limit}`);
    return JSON.parse(new TextDecoder().decode(await this.readExactly(length)));
  }

  /** Stops reading. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }

  async #next(most: number): Promise<Uint8Array> {
    if (this.#pending.length === 0) {
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("The connection closed early");
      this.#pending = value;
    }
    const chunk = this.#pending.subarray(0, most);
    this.#pending = this.#pending.subarray(chunk.length);
    return chunk;
  }
}
