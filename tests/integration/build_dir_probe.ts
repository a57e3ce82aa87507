/**
 * For build_dir_test.ts, inside a private mount namespace: mounts a tmpfs
 * inside a build directory, holding a file, and reports whether
 * removeBuildDir() refused and left the file alone.
 *
 * @module
 */
import { join } from "node:path";
import { removeBuildDir } from "../../src/image/build.ts";

const [dir] = Deno.args as [string];
const mountPoint = join(dir, "rootfs/dev/shm");
await Deno.mkdir(mountPoint, { recursive: true });
const mounted = await new Deno.Command("mount", {
  args: ["-t", "tmpfs", "probe", mountPoint],
}).output();
if (!mounted.success) throw new Error("cannot mount the probe tmpfs");
await Deno.writeTextFile(join(mountPoint, "precious"), "keep me\n");

let error = "";
try {
  await removeBuildDir(dir);
} catch (e) {
  error = (e as Error).message;
}
const kept = await Deno.readTextFile(join(mountPoint, "precious")).catch(
  () => "",
);
await new Deno.Command("umount", { args: [mountPoint] }).output();
await removeBuildDir(dir);
const removed = !(await Deno.stat(dir).then(() => true, () => false));
console.log(JSON.stringify({ error, kept, removed }));
