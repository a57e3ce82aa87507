import { deepStrictEqual, rejects } from "node:assert/strict";
import { join } from "node:path";
import { IMAGE_FILES, type Recipe } from "../image/build.ts";
import { StateDb } from "./db.ts";
import { ImageService } from "./images.ts";

/** A builder that writes a fake image into the cache after a delay. */
function fakeBuilder(calls: string[]) {
  return async (recipe: Recipe, options: { cacheDir: string }) => {
    calls.push(recipe.name);
    await new Promise((r) => setTimeout(r, 50));
    const dir = join(options.cacheDir, `${recipe.name}-0123456789abcdef`);
    await Deno.mkdir(join(dir, IMAGE_FILES.rootSkeleton, ".ssh"), {
      recursive: true,
    });
    for (
      const f of [IMAGE_FILES.rootfs, IMAGE_FILES.kernel, IMAGE_FILES.initrd]
    ) {
      await Deno.writeTextFile(join(dir, f), f);
    }
    await Deno.writeTextFile(
      join(dir, IMAGE_FILES.manifest),
      JSON.stringify({
        kernelRelease: "6.1.0-test",
        recipeHash: "0123456789abcdef",
      }),
    );
    return dir;
  };
}

Deno.test("ImageService builds a missing image once for concurrent requests", async () => {
  const dir = await Deno.makeTempDir();
  const db = new StateDb(join(dir, "state.db"));
  const calls: string[] = [];
  const images = new ImageService({
    db,
    imagesDir: join(dir, "images"),
    cacheDir: join(dir, "cache"),
    build: fakeBuilder(calls),
  });
  const details: string[] = [];
  const [a, b] = await Promise.all([
    images.ensure("debian-bookworm", () => {}),
    images.ensure("debian-bookworm", (d) => details.push(d)),
  ]);
  deepStrictEqual(calls, ["debian-bookworm"]);
  deepStrictEqual(a, b);
  deepStrictEqual(details, ["waiting for a build of the same image"]);
  // Installed: the next request needs no build, and the rootfs is read-only.
  await images.ensure("debian-bookworm", () => {});
  deepStrictEqual(calls.length, 1);
  deepStrictEqual((await Deno.stat(a.rootfs)).mode! & 0o777, 0o444);
  deepStrictEqual(a.kernelRelease, "6.1.0-test");
  db.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ImageService names the known recipes for an unknown image", async () => {
  const dir = await Deno.makeTempDir();
  const db = new StateDb(join(dir, "state.db"));
  const images = new ImageService({
    db,
    imagesDir: dir,
    cacheDir: dir,
    build: fakeBuilder([]),
  });
  await rejects(
    images.ensure("arch-linux", () => {}),
    /Cannot find image "arch-linux".*debian-bookworm/,
  );
  db.close();
  await Deno.remove(dir, { recursive: true });
});
