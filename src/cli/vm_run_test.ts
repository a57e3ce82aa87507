import { deepStrictEqual, rejects } from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../config.ts";
import { planVmRun } from "./vm_run.ts";

const config = parseConfig("", { cpus: 8, memoryMib: 16384 });

Deno.test("planVmRun() refuses a --timings file whose directory does not exist", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "missing", "t.json");
  await rejects(
    planVmRun(undefined, ["true"], { timings: path }, config),
    { message: `Invalid --timings "${path}": its directory does not exist` },
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("planVmRun() refuses a --timings path that is a directory", async () => {
  const dir = await Deno.makeTempDir();
  await rejects(
    planVmRun(undefined, ["true"], { timings: dir }, config),
    { message: `Invalid --timings "${dir}": is a directory` },
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("planVmRun() accepts a new --timings file without creating it", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "t.json");
  const plan = await planVmRun(undefined, ["true"], { timings: path }, config);
  deepStrictEqual(plan.command, ["true"]);
  // A run refused later must leave no file behind.
  deepStrictEqual(await Deno.stat(path).then(() => true, () => false), false);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("planVmRun() refuses a --kernel that is not a kernel name", async () => {
  await rejects(
    planVmRun(undefined, ["true"], { kernel: "../x" }, config),
    { message: /^Invalid --kernel "\.\.\/x": must be 1 to 63 of a-z/ },
  );
  const plan = await planVmRun(
    undefined,
    ["true"],
    { kernel: "fc-6.1" },
    config,
  );
  deepStrictEqual(plan.kernel, "fc-6.1");
});

Deno.test("planVmRun() boots default_kernel unless --kernel names another", async () => {
  const withDefault = parseConfig('default_kernel = "fc-6.1"\n', {
    cpus: 8,
    memoryMib: 16384,
  });
  const plain = await planVmRun(undefined, ["true"], {}, withDefault);
  deepStrictEqual(plain.kernel, "fc-6.1");
  const chosen = await planVmRun(
    undefined,
    ["true"],
    { kernel: "other" },
    withDefault,
  );
  deepStrictEqual(chosen.kernel, "other");
  deepStrictEqual(
    (await planVmRun(undefined, ["true"], {}, config)).kernel,
    undefined,
  );
});

Deno.test("planVmRun() refuses a subdirectory with nothing to copy under it", async () => {
  const dir = await Deno.makeTempDir();
  const git = (...args: string[]) =>
    new Deno.Command("git", {
      args: ["-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", ...args],
    }).output();
  await git("init", "-q");
  await Deno.writeTextFile(join(dir, "top.txt"), "tracked\n");
  await Deno.mkdir(join(dir, "sub"));
  await Deno.writeTextFile(join(dir, "sub", "new.txt"), "untracked\n");
  await git("add", "top.txt");
  await git("commit", "-q", "-m", "one");
  const sub = join(dir, "sub");
  await rejects(
    planVmRun(sub, ["pwd"], {}, config),
    { message: /^Cannot use ".*\/sub" as a workspace: nothing under it/ },
  );
  // With the untracked file included there is a directory to run in.
  const plan = await planVmRun(
    sub,
    ["pwd"],
    { includeUntracked: true },
    config,
  );
  deepStrictEqual(plan.files?.files, ["sub/new.txt", "top.txt"]);
  await Deno.remove(dir, { recursive: true });
});
