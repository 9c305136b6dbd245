/**
 * Tar archives for tests, written as tar and npm write them (ustar headers, pax and GNU long
 * names), and gzipped npm-style package tarballs.
 *
 * @module
 */

/** A file for {@link tarOf}: its name, contents, and how a long name is written. */
export interface TarFile {
  /** Path in the archive. */
  name: string;
  /** Contents (text or bytes). */
  data: string | Uint8Array;
  /** `ustar` splits a long name into prefix and name, `pax` and `gnu` write an extra entry. */
  longName?: "ustar" | "pax" | "gnu";
}

/** A tar archive of `files`, written the way tar and npm write them. */
export function tarOf(files: readonly TarFile[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  const encoder = new TextEncoder();
  const header = (name: string, size: number, type: string, prefix = "") => {
    const block = new Uint8Array(512);
    const field = (offset: number, length: number, text: string) =>
      block.set(encoder.encode(text).subarray(0, length), offset);
    field(0, 100, name);
    field(100, 8, "0000755\0");
    field(108, 8, "0000000\0");
    field(116, 8, "0000000\0");
    field(124, 12, `${size.toString(8).padStart(11, "0")}\0`);
    field(136, 12, "00000000000\0");
    field(156, 1, type);
    field(257, 6, "ustar\0");
    field(263, 2, "00");
    field(345, 155, prefix);
    block.fill(0x20, 148, 156);
    const sum = block.reduce((total, byte) => total + byte, 0);
    field(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
    blocks.push(block);
  };
  const contents = (bytes: Uint8Array) => {
    const padded = new Uint8Array(Math.ceil(bytes.length / 512) * 512);
    padded.set(bytes);
    blocks.push(padded);
  };
  for (const file of files) {
    const data = typeof file.data === "string" ? encoder.encode(file.data) : file.data;
    if (file.longName === "pax") {
      const record = (key: string, value: string) => {
        const body = ` ${key}=${value}\n`;
        let length = body.length + 1;
        while (`${length}${body}`.length !== length) length++;
        return `${length}${body}`;
      };
      const pax = encoder.encode(record("path", file.name));
      header("PaxHeader", pax.length, "x");
      contents(pax);
      header(file.name.slice(0, 99), data.length, "0");
    } else if (file.longName === "gnu") {
      const name = encoder.encode(`${file.name}\0`);
      header("././@LongLink", name.length, "L");
      contents(name);
      header(file.name.slice(0, 99), data.length, "0");
    } else if (file.longName === "ustar") {
      const cut = file.name.lastIndexOf("/", 155);
      header(file.name.slice(cut + 1), data.length, "0", file.name.slice(0, cut));
    } else {
      header(file.name, data.length, file.name.endsWith("/") ? "5" : "0");
    }
    if (data.length > 0) contents(data);
  }
  blocks.push(new Uint8Array(1024));
  const archive = new Uint8Array(blocks.reduce((total, block) => total + block.length, 0));
  let offset = 0;
  for (const block of blocks) {
    archive.set(block, offset);
    offset += block.length;
  }
  return archive;
}

/** `files` as a gzipped tarball, as npm serves packages. */
export async function tgzOf(files: readonly TarFile[]): Promise<Uint8Array> {
  const stream = new Blob([tarOf(files) as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return await new Response(stream).bytes();
}
