/**
 * Hostile: opens network connections (to a loopback port the test listens on, nothing else).
 *
 * @module
 */

import { attempt, hostileNode, hostileTarget } from "../hostile_support.ts";

const target = hostileTarget(import.meta.url);

async function attack(phase: string) {
  await attempt("network", phase, {
    connect: async () => {
      const connection = await Deno.connect({ hostname: "127.0.0.1", port: target.port });
      connection.close();
      return "connected";
    },
    fetch: async () => (await fetch(`http://127.0.0.1:${target.port}/`)).status,
    udp: () => Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 }),
  });
}

await attack("import");

/** Connects again when it runs. */
export const networkNode = hostileNode("network", () => attack("run"));
