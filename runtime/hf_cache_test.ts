import assert from "node:assert/strict";
import { join } from "node:path";
import { cacheFolderName, huggingFaceCacheDirs, resolveModelFolder } from "./hf_cache.ts";
import { UserError } from "./user_error.ts";
import { withTempDir } from "../tests/testing.ts";

/** A cache repository with the given snapshots (name -> files), and refs. */
async function makeRepo(
  cache: string,
  modelId: string,
  snapshots: string[],
  refs: Record<string, string> = {},
): Promise<string> {
  const repo = join(cache, cacheFolderName(modelId));
  for (const [index, name] of snapshots.entries()) {
    const snapshot = join(repo, "snapshots", name);
    await Deno.mkdir(snapshot, { recursive: true });
    await Deno.writeTextFile(join(snapshot, "model_index.json"), "{}");
    const time = new Date(2026, 0, 1 + index);
    await Deno.utime(snapshot, time, time);
  }
  await Deno.mkdir(join(repo, "refs"), { recursive: true });
  for (const [name, commit] of Object.entries(refs)) {
    await Deno.writeTextFile(join(repo, "refs", name), commit);
  }
  return repo;
}

Deno.test("huggingFaceCacheDirs follows HF_HUB_CACHE, HF_HOME and the default under HOME", () => {
  const env = (values: Record<string, string>) => (name: string) => values[name];
  assert.deepEqual(huggingFaceCacheDirs(env({ HF_HUB_CACHE: "/c", HOME: "/h" })), [
    "/c",
    "/h/.cache/huggingface/hub",
  ]);
  assert.deepEqual(huggingFaceCacheDirs(env({ HF_HOME: "/hf", XDG_CACHE_HOME: "/x" })), [
    "/hf/hub",
    "/x/huggingface/hub",
  ]);
  assert.equal(cacheFolderName("THUDM/CogVideoX-2b"), "models--THUDM--CogVideoX-2b");
});

Deno.test("a plain pipeline folder resolves to itself", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "model_index.json"), "{}");
    assert.deepEqual(await resolveModelFolder(dir), { folder: dir, source: "folder" });
  });
});

Deno.test("a cache folder resolves to refs/main, a revision, or else the newest snapshot", async () => {
  await withTempDir(async (dir) => {
    const repo = await makeRepo(dir, "org/a", ["aaa", "bbb", "ccc"], { main: "bbb", v1: "aaa" });
    assert.equal((await resolveModelFolder(repo)).folder, join(repo, "snapshots", "bbb"));
    assert.equal(
      (await resolveModelFolder(repo, { revision: "v1" })).folder,
      join(repo, "snapshots", "aaa"),
    );
    assert.equal(
      (await resolveModelFolder(repo, { revision: "ccc" })).folder,
      join(repo, "snapshots", "ccc"),
    );
    await assert.rejects(
      () => resolveModelFolder(repo, { revision: "ddd" }),
      (error: Error) =>
        error instanceof UserError &&
        /Revision "ddd" .*\(snapshots: aaa, bbb, ccc\)/.test(error.message),
    );
    const noRefs = await makeRepo(dir, "org/b", ["old", "new"]);
    assert.equal((await resolveModelFolder(noRefs)).folder, join(noRefs, "snapshots", "new"));
  });
});

Deno.test("a model id is found in the cache folders; a missing one says where it looked", async () => {
  await withTempDir(async (dir) => {
    const cache = join(dir, "hub");
    const repo = await makeRepo(cache, "THUDM/CogVideoX-2b", ["abc"], { main: "abc" });
    const resolved = await resolveModelFolder(join(dir, "work", "THUDM", "CogVideoX-2b"), {
      cacheDirs: [join(dir, "elsewhere"), cache],
    });
    assert.deepEqual(resolved, {
      folder: join(repo, "snapshots", "abc"),
      repo,
      revision: "abc",
      source: "model_id",
    });
    await assert.rejects(
      () => resolveModelFolder(join(dir, "work", "THUDM", "CogVideoX-5b"), { cacheDirs: [cache] }),
      (error: Error) =>
        error instanceof UserError &&
        error.message.includes(join(cache, "models--THUDM--CogVideoX-5b")) &&
        error.message.includes("huggingface-cli download THUDM/CogVideoX-5b"),
    );
  });
});
