/**
 * The queue end to end: real `cogflow worker` processes on Redis running the tiny workflow, the
 * submitter and the listing through the CLI, as people use them. Needs a Redis on 127.0.0.1 at
 * `COGFLOW_TEST_REDIS_PORT` (default 6390; `.ci/run` starts one) and `redis-server` for the
 * restart test; without them these tests are skipped, saying so. Each test uses a queue of its
 * own and stops every process it started.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { maskSecrets, maskUrl, queueTarget } from "../queue/connection.ts";
import { queueCommand } from "../queue/queue_command.ts";
import { outputSets, RUN_JOB_FORMAT, runJobId } from "../queue/run_job.ts";
import { ROOT } from "./testing.ts";

const PORT = Number(Deno.env.get("COGFLOW_TEST_REDIS_PORT") ?? "6390");
const REDIS = `redis://127.0.0.1:${PORT}`;
const RESTART_PORT = PORT + 1;
const FLAGS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
];
/** Small runs: 2 sampling steps of the 2b fixture. */
const TINY = ["workflows/tiny.yaml", "--set", "steps=2"];

const redisUp = await answers(PORT);
const redisServer = await hasCommand("redis-server");
if (!redisUp) {
  console.warn(
    `queue tests skipped: no Redis answers on 127.0.0.1:${PORT} ` +
      `(start one: redis-server --port ${PORT} --save "", or set COGFLOW_TEST_REDIS_PORT)`,
  );
}

// --- Without Redis -----------------------------------------------------------------------------

Deno.test("Redis URLs are printed with the password masked", () => {
  assert.equal(maskUrl("redis://:s3cret@10.0.0.5:6379/2"), "redis://***@10.0.0.5:6379/2");
  assert.equal(maskUrl("rediss://app:s3cret@host:6380"), "rediss://app:***@host:6380");
  assert.equal(maskUrl("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
  const url = "redis://:p%40ss@host:1";
  assert.equal(
    maskSecrets("WRONGPASS p@ss for redis://:p%40ss@host:1", url),
    "WRONGPASS *** for redis://***@host:1",
  );
  assert.throws(
    () => queueTarget({ redis: "http://:pw@host" }),
    /Invalid Redis URL "http:\/\/\*\*\*@host"/,
  );
  assert.throws(() => queueTarget({ redis: REDIS, queue: "a:b" }), /Invalid queue name "a:b"/);
});

Deno.test("a job id depends on the run's content, not on how its params were written", async () => {
  const text = await Deno.readTextFile(join(ROOT, "workflows", "tiny.yaml"));
  const job = (set: string[]) =>
    runJobId({ format: RUN_JOB_FORMAT, workflow: "workflows/tiny.yaml", text, set, plugins: [] });
  assert.match(job([]), /^run-[0-9a-f]{32}$/);
  assert.equal(job(["seed=1"]), job(["seed=0", "seed=1"]));
  assert.notEqual(job(["seed=1"]), job(["seed=2"]));
  assert.notEqual(
    job([]),
    runJobId({
      format: RUN_JOB_FORMAT,
      workflow: "workflows/tiny.yaml",
      text: `${text}\n# changed\n`,
      set: [],
      plugins: [],
    }),
  );
  // The files it was composed from count, and so do params only a base declares.
  const variant = (hash: string, set: string[] = []) =>
    runJobId({
      format: RUN_JOB_FORMAT,
      workflow: "flows/variant.yaml",
      text: "cogflow: 1\nextends: ../lib/base.yaml\n",
      files: [{ path: "../lib/base.yaml", sha256: hash, text: "" }],
      set,
      plugins: [],
    });
  assert.notEqual(variant("a"), variant("b"));
  assert.notEqual(variant("a", ["steps=2"]), variant("a", ["steps=3"]));
  assert.equal(variant("a", ["steps=3", "steps=2"]), variant("a", ["steps=2"]));
  assert.deepEqual(outputSets({ text, set: ["output=x/a.mp4"] }, "/shared"), [
    'output="/shared/x/a.mp4"',
  ]);
  assert.deepEqual(outputSets({ text, set: ["output=/abs/a.mp4"] }, "/shared"), []);
  assert.deepEqual(outputSets({ text, set: [] }, "/shared"), ['output="/shared/out/tiny.mp4"']);
});

// --- With Redis ----------------------------------------------------------------------------------

Deno.test({
  name: "an unreachable Redis is one message, without the password",
  ignore: !redisUp,
  fn: async () => {
    const result = await cli(["queue", "--redis", "redis://:hunter22@127.0.0.1:1"]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /Cannot reach Redis at "redis:\/\/\*\*\*@127\.0\.0\.1:1"/);
    assert.doesNotMatch(result.stderr + result.stdout, /hunter22/);
  },
});

Deno.test({
  name: "an invalid workflow exits 2 and never reaches the queue",
  ignore: !redisUp,
  fn: async () => {
    const queue = queueName();
    const result = await cli(["submit", "tests/invalid/cycle.yaml", ...target(queue)]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^error: /m);
    assert.deepEqual(await listJobs(queue), []);
  },
});

Deno.test({
  name: "the same run submitted twice is one job; another seed is another",
  ignore: !redisUp,
  fn: async () => {
    const queue = queueName();
    const first = await cli(["submit", ...TINY, "--set", "seed=5", ...target(queue)]);
    const again = await cli(["submit", ...TINY, "--set", "seed=5", ...target(queue)]);
    const other = await cli(["submit", ...TINY, "--set", "seed=6", ...target(queue)]);
    for (const result of [first, again, other]) assert.equal(result.code, 0, result.stderr);
    assert.equal(again.stdout, first.stdout);
    assert.match(again.stderr, /is already in the queue \(waiting\)/);
    assert.notEqual(other.stdout, first.stdout);
    const jobs = await listJobs(queue);
    assert.deepEqual(
      jobs.map((job) => job.id).sort(),
      [first.stdout.trim(), other.stdout.trim()].sort(),
    );
    const cancelled = await cli(["queue", "--cancel", first.stdout.trim(), ...target(queue)]);
    assert.match(cancelled.stdout, /removed from the queue/);
    assert.equal((await listJobs(queue)).length, 1);
    const urgent = await cli([
      "submit",
      ...TINY,
      "--set",
      "seed=7",
      "--priority",
      "5",
      ...target(queue),
    ]);
    assert.equal(urgent.code, 0, urgent.stderr);
    const listed = (await listJobs(queue)).find((job) => job.id === urgent.stdout.trim());
    assert.equal(listed?.priority, 5);
  },
});

Deno.test({
  name: "jobs on 3 workers all complete with the outputs of local runs",
  ignore: !redisUp,
  fn: async () => {
    const queue = queueName();
    const jobs = Number(Deno.env.get("COGFLOW_TEST_QUEUE_JOBS") ?? "6");
    await withTemp(async (dir) => {
      const shared = join(dir, "shared");
      const workers = await Promise.all(
        [1, 2, 3].map((n) => startWorker(queue, { outputDir: shared, name: `w${n}` })),
      );
      try {
        for (let seed = 0; seed < jobs; seed++) {
          const result = await cli(["submit", ...TINY, ...seedOutputs(seed), ...target(queue)]);
          assert.equal(result.code, 0, result.stderr);
        }
        const done = await waitFor(
          queue,
          (list) => list.filter((job) => job.state === "done").length === jobs,
          120_000,
        );
        assert.equal(done.length, jobs);
        assert.ok(new Set(done.map((job) => job.worker)).size >= 2, "jobs spread over workers");
      } finally {
        await Promise.all(workers.map(stopWorker));
      }
      for (let seed = 0; seed < jobs; seed++) {
        await Deno.stat(join(shared, `out/seed-${seed}.mp4`));
      }
      // Local runs of two of them give the same bytes.
      for (const seed of [0, jobs - 1]) {
        const local = await runLocally([...TINY.slice(1), ...seedOutputs(seed)], dir);
        assert.equal(local.code, 0, local.stderr);
        for (const name of [`seed-${seed}.safetensors`, `seed-${seed}.mp4`]) {
          assert.deepEqual(
            await Deno.readFile(join(shared, "out", name)),
            await Deno.readFile(join(dir, "out", name)),
            `${name} differs from the local run`,
          );
        }
      }
      assert.deepEqual(await leftovers(shared), []);
    });
  },
});

Deno.test({
  name: "a variant (extends: a base) submitted from one folder completes on a worker without it",
  ignore: !redisUp,
  fn: async () => {
    const queue = queueName();
    await withTemp(async (dir) => {
      // The submitter's folder: flows/variant.yaml extends ../lib/base.yaml (a copy of tiny.yaml).
      const here = join(dir, "here");
      await Deno.mkdir(join(here, "flows"), { recursive: true });
      await Deno.mkdir(join(here, "lib"));
      await Deno.copyFile(join(ROOT, "workflows", "tiny.yaml"), join(here, "lib", "base.yaml"));
      await Deno.writeTextFile(
        join(here, "flows", "variant.yaml"),
        "cogflow: 1\nextends: ../lib/base.yaml\nname: tiny-variant\n" +
          "params:\n  steps: { default: 2 }\n  output: { default: out/variant.mp4 }\n",
      );
      // The worker's folder has flows/ but neither file.
      const there = join(dir, "there");
      await Deno.mkdir(join(there, "flows"), { recursive: true });
      const shared = join(dir, "shared");
      const sets = [
        "--set",
        `model=${join(ROOT, "tests", "fixtures", "tiny-cogvideox", "2b")}`,
        "--set",
        "tensors_out=out/variant.safetensors",
      ];
      const worker = await startWorker(queue, { outputDir: shared, name: "w", cwd: there });
      try {
        const submitted = await cli(
          ["submit", "flows/variant.yaml", ...sets, "--wait", ...target(queue)],
          { cwd: here },
        );
        assert.equal(submitted.code, 0, submitted.stderr);
        assert.match(submitted.stdout, /wrote .*variant\.mp4/);
      } finally {
        await stopWorker(worker);
      }
      // What the job laid out is gone again.
      assert.deepEqual(await names(there), ["flows"]);
      assert.deepEqual(await names(join(there, "flows")), []);

      const local = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-env",
          "--allow-run",
          join(ROOT, "cli", "launch.ts"),
          "run",
          "flows/variant.yaml",
          ...sets,
          "--quiet",
        ],
        cwd: here,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(local.code, 0, new TextDecoder().decode(local.stderr));
      for (const name of ["variant.safetensors", "variant.mp4"]) {
        assert.deepEqual(
          await Deno.readFile(join(shared, "out", name)),
          await Deno.readFile(join(here, "out", name)),
          `${name} differs from the local run`,
        );
      }
    });
  },
});

Deno.test({
  name: "a worker killed with -9 mid-sampling: another worker completes its job, no partial file",
  ignore: !redisUp,
  fn: async () => {
    const queue = queueName();
    await withTemp(async (dir) => {
      const first = await startWorker(queue, { outputDir: dir, name: "doomed", stallMs: 1000 });
      let second: Worker | undefined;
      try {
        await submitLongRun(queue, 1);
        first.child.kill("SIGKILL");
        await first.child.status;
        second = await startWorker(queue, { outputDir: dir, name: "rescuer", stallMs: 1000 });
        const [job] = await waitFor(queue, (list) => list[0]?.state === "done", 90_000);
        assert.equal(job.worker, "rescuer");
      } finally {
        await stopWorker(first);
        if (second) await stopWorker(second);
      }
      // The killed run's processes died with it: one video, not a second one named seed-1-1.mp4.
      assert.deepEqual(await names(join(dir, "out")), [
        "seed-1.mp4",
        "seed-1.safetensors",
        "seed-1.sheet.png",
      ]);
      assert.deepEqual(await leftovers(dir), []);
    });
  },
});

Deno.test({
  name: "a run killed under its worker is a worker fault: retried, then done",
  ignore: !redisUp,
  fn: async () => {
    const queue = queueName();
    await withTemp(async (dir) => {
      const worker = await startWorker(queue, { outputDir: dir, name: "w" });
      try {
        const id = await submitLongRun(queue, 3);
        // The launcher of the job's run: its command line names the job's workflow file.
        const processes = new TextDecoder().decode(
          (await new Deno.Command("ps", { args: ["-eo", "pid=,args="], stdout: "piped" }).output())
            .stdout,
        );
        const launcher = processes.split("\n").find((line) =>
          line.includes(`.cogflow-job-${id}`) && line.includes("launch.ts")
        );
        assert.ok(launcher, "the job's process is running");
        Deno.kill(Number(launcher.trim().split(/\s+/)[0]), "SIGKILL");
        const [job] = await waitFor(queue, (list) => list[0]?.state === "done", 90_000);
        assert.equal(job.attempts, 2);
      } finally {
        await stopWorker(worker);
      }
      assert.deepEqual(await names(join(dir, "out")), [
        "seed-3.mp4",
        "seed-3.safetensors",
        "seed-3.sheet.png",
      ]);
    });
  },
});

Deno.test({
  name: "a worker stopped with SIGTERM puts its running job back for another worker",
  ignore: !redisUp,
  fn: async () => {
    const queue = queueName();
    await withTemp(async (dir) => {
      const first = await startWorker(queue, { outputDir: dir, name: "leaving" });
      let second: Worker | undefined;
      try {
        await submitLongRun(queue, 4);
        await stopWorker(first);
        assert.match(first.log.text, /back to the queue for another worker/);
        const [waiting] = await listJobs(queue);
        assert.equal(waiting.state, "waiting");
        second = await startWorker(queue, { outputDir: dir, name: "staying" });
        const [job] = await waitFor(queue, (list) => list[0]?.state === "done", 90_000);
        assert.equal(job.worker, "staying");
      } finally {
        await stopWorker(first);
        if (second) await stopWorker(second);
      }
      assert.deepEqual(await names(join(dir, "out")), [
        "seed-4.mp4",
        "seed-4.safetensors",
        "seed-4.sheet.png",
      ]);
    });
  },
});

Deno.test({
  name: "Ctrl-C of a waiting submitter cancels its running job",
  ignore: !redisUp,
  fn: async () => {
    const queue = queueName();
    await withTemp(async (dir) => {
      const worker = await startWorker(queue, { outputDir: dir, name: "w" });
      try {
        const submitter = spawnCli([
          "submit",
          "workflows/tiny.yaml",
          "--set",
          "steps=200",
          ...seedOutputs(2),
          "--wait",
          "--plain",
          ...target(queue),
        ]);
        const output = collect(submitter.stderr);
        await until(() => output.text.includes("start sample"), 60_000);
        submitter.kill("SIGINT");
        const status = await submitter.status;
        await output.done;
        assert.equal(status.code, 130, output.text);
        assert.match(output.text, /Job run-[0-9a-f]+ cancelled/);
        const [job] = await listJobs(queue);
        assert.equal(job.state, "failed");
        assert.equal(job.error, "Cancelled");
        assert.equal(job.attempts, 1, "a cancelled job is not retried");
      } finally {
        await stopWorker(worker);
      }
      assert.deepEqual(await names(join(dir, "out")).catch(() => []), []);
    });
  },
});

Deno.test({
  name: "a run that fails on the worker is not retried; --wait exits with its code",
  ignore: !redisUp,
  fn: async () => {
    const queue = queueName();
    await withTemp(async (dir) => {
      // The output exists on the worker's side only: the submitter's validation passes.
      await Deno.mkdir(join(dir, "out"));
      await Deno.writeTextFile(join(dir, "out", "taken.mp4"), "");
      const worker = await startWorker(queue, { outputDir: dir, name: "w" });
      try {
        const result = await cli([
          "submit",
          ...TINY,
          "--set",
          "output=out/taken.mp4",
          "--set",
          "if_exists=error",
          "--wait",
          "--quiet",
          ...target(queue),
        ]);
        assert.equal(result.code, 1, result.stderr);
        assert.match(result.stderr, /^error: Node "save" \(save_video\) failed: .*taken\.mp4/m);
        const [job] = await listJobs(queue);
        assert.equal(job.state, "failed");
        assert.equal(job.attempts, 1);
      } finally {
        await stopWorker(worker);
      }
    });
  },
});

Deno.test({
  name: "a Redis restart mid-queue loses no job",
  ignore: !redisUp || !redisServer,
  fn: async () => {
    const queue = queueName();
    await withTemp(async (dir) => {
      const data = join(dir, "redis");
      await Deno.mkdir(data);
      let redis = await startRedis(RESTART_PORT, data);
      const url = `redis://127.0.0.1:${RESTART_PORT}`;
      const worker = await startWorker(queue, { outputDir: dir, name: "w", redis: url });
      try {
        for (let seed = 0; seed < 4; seed++) {
          const result = await cli([
            "submit",
            ...TINY,
            ...seedOutputs(seed),
            ...target(queue, url),
          ]);
          assert.equal(result.code, 0, result.stderr);
        }
        await waitFor(queue, (list) => list.some((job) => job.state === "done"), 60_000, url);
        redis.kill("SIGTERM");
        await redis.status;
        redis = await startRedis(RESTART_PORT, data);
        const done = await waitFor(
          queue,
          (list) => list.length === 4 && list.every((job) => job.state === "done"),
          90_000,
          url,
        );
        assert.equal(done.length, 4);
      } finally {
        await stopWorker(worker);
        redis.kill("SIGTERM");
        await redis.status;
      }
      for (let seed = 0; seed < 4; seed++) await Deno.stat(join(dir, `out/seed-${seed}.mp4`));
    });
  },
});

// --- Helpers -------------------------------------------------------------------------------------

interface Listing {
  id: string;
  state: string;
  priority: number;
  attempts: number;
  progress?: string;
  files?: string[];
  worker?: string;
  error?: string;
}

interface Worker {
  child: Deno.ChildProcess;
  log: { text: string; done: Promise<void> };
}

function queueName(): string {
  return `test-${crypto.randomUUID().slice(0, 8)}`;
}

function target(queue: string, url = REDIS): string[] {
  return ["--redis", url, "--queue", queue];
}

function seedOutputs(seed: number): string[] {
  return [
    "--set",
    `seed=${seed}`,
    "--set",
    `output=out/seed-${seed}.mp4`,
    "--set",
    `tensors_out=out/seed-${seed}.safetensors`,
  ];
}

function spawnCli(args: string[], options: { cwd?: string } = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...FLAGS, join(ROOT, "mod.ts"), ...args],
    cwd: options.cwd ?? ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

async function cli(
  args: string[],
  options: { cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await spawnCli(args, options).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** `deno task cogflow run workflows/tiny.yaml ...` in `cwd`, through the permission launcher. */
async function runLocally(args: string[], cwd: string) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-run",
      join(ROOT, "cli", "launch.ts"),
      "run",
      join(ROOT, TINY[0]),
      ...args,
      "--quiet",
    ],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
}

/**
 * The queue's jobs as `cogflow queue --json` lists them, listed in this process (a CLI process
 * takes a second or two to start: polls that slow can miss a whole 1000-step tiny run).
 */
async function listJobs(queue: string, url = REDIS): Promise<Listing[]> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io = {
    stdout: { write: (text: string) => void stdout.push(text) },
    stderr: { write: (text: string) => void stderr.push(text) },
    stderrIsTerminal: false,
    columns: 80,
  };
  const code = await queueCommand(["--json", ...target(queue, url)], io);
  assert.equal(code, 0, stderr.join(""));
  return JSON.parse(stdout.join(""));
}

/**
 * Submits a 1000-step run of tiny.yaml (outputs `seed-<seed>.*`) and waits until a worker samples
 * it; returns the job id.
 */
async function submitLongRun(queue: string, seed: number): Promise<string> {
  const submitted = await cli([
    "submit",
    "workflows/tiny.yaml",
    "--set",
    "steps=1000",
    ...seedOutputs(seed),
    ...target(queue),
  ]);
  assert.equal(submitted.code, 0, submitted.stderr);
  await waitFor(
    queue,
    (list) => list.some((job) => job.progress?.startsWith("sample")),
    60_000,
  );
  return submitted.stdout.trim();
}

async function waitFor(
  queue: string,
  ready: (list: Listing[]) => boolean,
  timeoutMs: number,
  url = REDIS,
): Promise<Listing[]> {
  const deadline = Date.now() + timeoutMs;
  let list: Listing[] = [];
  while (Date.now() < deadline) {
    list = await listJobs(queue, url).catch(() => []);
    if (ready(list)) return list;
    await delay(300);
  }
  throw new Error(`Timed out waiting for queue ${queue}: ${JSON.stringify(list)}`);
}

async function startWorker(
  queue: string,
  options: { outputDir: string; name: string; stallMs?: number; redis?: string; cwd?: string },
): Promise<Worker> {
  const child = spawnCli([
    "worker",
    ...target(queue, options.redis),
    "--output-dir",
    options.outputDir,
    "--name",
    options.name,
    "--stall-interval",
    String(options.stallMs ?? 5000),
  ], { cwd: options.cwd });
  child.stdout.cancel();
  const log = collect(child.stderr);
  await until(() => log.text.includes("taking jobs"), 30_000).catch((error) => {
    child.kill("SIGKILL");
    throw new Error(`${error.message}: ${log.text}`);
  });
  return { child, log };
}

async function stopWorker(worker: Worker): Promise<void> {
  try {
    worker.child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  const timer = setTimeout(() => {
    try {
      worker.child.kill("SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }, 20_000);
  await worker.child.status;
  clearTimeout(timer);
  await worker.log.done;
}

async function startRedis(port: number, dir: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("redis-server", {
    args: [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--appendonly",
      "yes",
      "--save",
      "",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await until(() => answers(port), 10_000);
  return child;
}

function collect(stream: ReadableStream<Uint8Array>): { text: string; done: Promise<void> } {
  const log = { text: "", done: Promise.resolve() };
  const decoder = new TextDecoder();
  log.done = (async () => {
    for await (const chunk of stream) log.text += decoder.decode(chunk, { stream: true });
  })();
  return log;
}

async function until(test: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error("Timed out");
    await delay(100);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-queue-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) found.push(entry.name);
  return found.sort();
}

/** Temporary files of atomic writes left anywhere under `dir`. */
async function leftovers(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (folder: string) => {
    for await (const entry of Deno.readDir(folder)) {
      const path = join(folder, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name.includes(".cogflow-tmp-")) found.push(path);
    }
  };
  await walk(dir);
  return found;
}

async function answers(port: number): Promise<boolean> {
  try {
    const output = await new Deno.Command("redis-cli", {
      args: ["-h", "127.0.0.1", "-p", String(port), "ping"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(output.stdout).trim() === "PONG";
  } catch {
    return false;
  }
}

async function hasCommand(name: string): Promise<boolean> {
  try {
    await new Deno.Command(name, { args: ["--version"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    return false;
  }
}
