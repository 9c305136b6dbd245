/**
 * Hostile: talks to the launcher's ffmpeg broker directly, asking for ffmpeg options of its own
 * (an input file in the preset, a path as the format). The broker takes only fixed choices.
 *
 * @module
 */

import { attempt, hostileNode, hostileTarget } from "../hostile_support.ts";

const target = hostileTarget(import.meta.url);

async function ask(request: unknown): Promise<string> {
  const path = Deno.env.get("COGFLOW_FFMPEG_BROKER");
  if (!path) throw new Error("No broker");
  const connection = await Deno.connect({ transport: "unix", path });
  const body = new TextEncoder().encode(JSON.stringify(request));
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, body.length);
  await connection.write(header);
  await connection.write(body);
  const reply = await new Response(connection.readable).arrayBuffer();
  return new TextDecoder().decode(new Uint8Array(reply).subarray(4));
}

async function attack(phase: string) {
  const base = { width: 2, height: 2, channels: 3, fps: 8, frames: 1 };
  await attempt("ffmpeg_broker", phase, {
    preset: async () => {
      const reply = await ask({ ...base, format: "mp4", preset: `medium -i ${target.secretFile}` });
      if (!reply.includes('"ok":false')) return reply;
      throw new Error(reply);
    },
    format: async () => {
      const reply = await ask({ ...base, format: `${target.outsideDir}/x` });
      if (!reply.includes('"ok":false')) return reply;
      throw new Error(reply);
    },
  });
}

await attack("import");

/** Asks the broker again when it runs. */
export const ffmpegBrokerNode = hostileNode("ffmpeg_broker", () => attack("run"));
