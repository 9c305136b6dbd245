import assert from "node:assert/strict";
import { join } from "node:path";
import { createTensor } from "../runtime/tensor.ts";
import { approximateBytes, MemoryCache, stampFile, stampsAreCurrent } from "./result_cache.ts";

const tensor = (count: number) => createTensor("float32", [count]);

Deno.test("approximateBytes counts tensor and typed array bytes, and little else", () => {
  assert.equal(approximateBytes(tensor(1000)), 4000);
  assert.equal(approximateBytes(new Uint8Array(10)), 10);
  assert.equal(approximateBytes(new ArrayBuffer(7)), 7);
  assert.equal(approximateBytes(3), 8);
  assert.ok(approximateBytes({ a: tensor(1000), b: [tensor(1000)] }) >= 8000);
  // Shared and circular references are counted once.
  const shared = tensor(1000);
  const circular: Record<string, unknown> = { a: shared, b: shared };
  circular.self = circular;
  assert.ok(approximateBytes(circular) < 4100);
});

Deno.test("MemoryCache keeps entries within its byte budget, least recently used out first", async () => {
  const cache = new MemoryCache(10_000);
  const entry = (count: number) => ({ outputs: { t: tensor(count) }, files: [] });
  await cache.set("a", entry(1000));
  await cache.set("b", entry(1000));
  assert.equal(cache.size, 2);
  assert.ok(cache.bytes >= 8000 && cache.bytes <= 10_000);
  // Reading `a` makes `b` the oldest.
  assert.ok(await cache.get("a"));
  await cache.set("c", entry(1000));
  assert.equal(await cache.get("b"), undefined);
  assert.ok(await cache.get("a"));
  assert.ok(await cache.get("c"));
  assert.ok(cache.bytes <= cache.maxBytes);
});

Deno.test("MemoryCache refuses an entry larger than its budget, and replaces by key", async () => {
  const cache = new MemoryCache(1000);
  await cache.set("big", { outputs: { t: tensor(1000) }, files: [] });
  assert.equal(cache.size, 0);
  await cache.set("k", { outputs: { v: 1 }, files: [] });
  await cache.set("k", { outputs: { v: 2 }, files: [] });
  assert.equal(cache.size, 1);
  assert.deepEqual((await cache.get("k"))?.outputs, { v: 2 });
  await cache.delete("k");
  assert.equal(cache.size, 0);
  assert.equal(cache.bytes, 0);
  await cache.set("k", { outputs: { v: 3 }, files: [] });
  cache.clear();
  assert.equal(cache.size, 0);
});

Deno.test("file stamps tell when a file changed size or time, or is gone", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-stamp-" });
  try {
    const path = join(dir, "input.txt");
    await Deno.writeTextFile(path, "one");
    const stamp = await stampFile(path);
    assert.equal(stamp.path, path);
    assert.equal(stamp.size, 3);
    assert.ok(stamp.mtimeMs > 0);
    assert.ok(await stampsAreCurrent([stamp]));
    assert.ok(await stampsAreCurrent([]));

    await Deno.writeTextFile(path, "three");
    assert.equal(await stampsAreCurrent([stamp]), false);

    const now = await stampFile(path);
    await Deno.utime(path, new Date(now.mtimeMs + 5000), new Date(now.mtimeMs + 5000));
    assert.equal(await stampsAreCurrent([now]), false);

    await Deno.remove(path);
    assert.equal(await stampsAreCurrent([now]), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
