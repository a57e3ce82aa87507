import { deepStrictEqual, rejects } from "node:assert/strict";
import { dirname } from "node:path";
import { inspectRepo, listWorkspaceFiles } from "./git.ts";

const GIT_ENV = {
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@example.invalid",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@example.invalid",
};

async function git(dir: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("git", {
    args: ["-C", dir, ...args],
    env: GIT_ENV,
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

async function repo(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir();
  await git(dir, "init", "-q");
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(dirname(`${dir}/${path}`), { recursive: true });
    await Deno.writeTextFile(`${dir}/${path}`, text);
  }
  await git(dir, "add", "-A");
  await git(dir, "commit", "-q", "-m", "init");
  return dir;
}

Deno.test("listWorkspaceFiles() ships tracked files, untracked only on request, never ignored", async () => {
  const dir = await repo({
    "a.txt": "a",
    "sub/b.txt": "b",
    "gone.txt": "g",
    ".gitignore": "*.log\n",
  });
  await Deno.writeTextFile(`${dir}/new.txt`, "n");
  await Deno.writeTextFile(`${dir}/debug.log`, "ignored");
  await Deno.remove(`${dir}/gone.txt`);
  const r = await inspectRepo(dir);
  deepStrictEqual(await listWorkspaceFiles(r, false), {
    files: [".gitignore", "a.txt", "sub/b.txt"],
    skippedUntracked: 1,
  });
  deepStrictEqual(await listWorkspaceFiles(r, true), {
    files: [".gitignore", "a.txt", "new.txt", "sub/b.txt"],
    skippedUntracked: 0,
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("inspectRepo() finds the top and the subdirectory it was given", async () => {
  const dir = await repo({ "sub/deeper/x.txt": "x" });
  const r = await inspectRepo(`${dir}/sub/deeper`);
  deepStrictEqual(r.top, await Deno.realPath(dir));
  deepStrictEqual(r.relative, "sub/deeper");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("inspectRepo() refuses non-repositories, bare repositories and submodules", async () => {
  const plain = await Deno.makeTempDir();
  await rejects(inspectRepo(plain), /not inside a git repository/);
  await rejects(inspectRepo(`${plain}/missing`), /no such directory/);

  const bare = await Deno.makeTempDir();
  await git(bare, "init", "-q", "--bare");
  await rejects(inspectRepo(bare), /bare repository/);

  const inner = await repo({ "x.txt": "x" });
  const outer = await repo({ "y.txt": "y" });
  await git(
    outer,
    "-c",
    "protocol.file.allow=always",
    "submodule",
    "add",
    "-q",
    inner,
    "inner",
  );
  await rejects(inspectRepo(outer), /submodules/);

  for (const d of [plain, bare, inner, outer]) {
    await Deno.remove(d, { recursive: true });
  }
});

Deno.test("inspecting and listing a repository never runs its core.fsmonitor program", async () => {
  const dir = await repo({ "a.txt": "a" });
  const marker = `${dir}.ran`;
  const hook = `${dir}.hook`;
  await Deno.writeTextFile(hook, `#!/bin/sh\ntouch '${marker}'\n`);
  await Deno.chmod(hook, 0o755);
  await git(dir, "config", "core.fsmonitor", hook);
  // The hook works: plain git runs it.
  await git(dir, "ls-files", "--deleted");
  deepStrictEqual(await exists(marker), true);
  await Deno.remove(marker);

  const found = await inspectRepo(dir);
  await listWorkspaceFiles(found, true);
  deepStrictEqual(await exists(marker), false);
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(hook);
});

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}
