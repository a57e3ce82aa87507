/**
 * The stand-in firecracker is at least as strict as the real one: flags,
 * socket, schema, files opened on configuration, pre-boot/post-boot rules.
 * The boot case needs a guest kernel (BANGER_TEST_KERNEL, or one in the
 * image build cache) and runs QEMU without any network device.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  apiCall,
  type ApiRequest,
  FirecrackerApiError,
} from "../../src/vmm/firecracker/api.ts";
import { parseVersionOutput } from "../../src/vmm/firecracker/version.ts";
import { E2E_CACHE_DIR } from "../e2e/harness.ts";

const STANDIN = new URL("../firecracker_standin/firecracker", import.meta.url)
  .pathname;

async function run(args: string[]) {
  const out = await new Deno.Command(STANDIN, { args, stdin: "null" })
    .output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

/** Starts the stand-in on a fresh socket; returns it and a cleanup. */
async function start() {
  const dir = await Deno.makeTempDir({ prefix: "fc-standin-" });
  const socket = join(dir, "api.sock");
  const child = new Deno.Command(STANDIN, {
    args: ["--api-sock", socket, "--id", "0123456789ab"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const deadline = Date.now() + 20_000;
  while (true) {
    try {
      await apiCall(socket, { method: "GET", path: "/" });
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    dir,
    socket,
    child,
    call: (request: ApiRequest) => apiCall(socket, request),
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.stderr.cancel();
      await child.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof FirecrackerApiError, String(error));
    return error.faultMessage;
  }
  assert.fail("the request was accepted");
}

Deno.test("stand-in: --version has Firecracker's shape, bad flags exit 153", async () => {
  const version = await run(["--version"]);
  assert.equal(version.code, 0);
  assert.deepEqual(parseVersionOutput(version.stdout, "stand-in"), [1, 14, 1]);
  const bad = await run(["--api-socket", "/tmp/x"]);
  assert.equal(bad.code, 153);
  assert.match(bad.stderr, /Found argument '--api-socket'/);
});

Deno.test("stand-in: refuses an API socket path that exists", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "api.sock"), "");
    const out = await run(["--api-sock", join(dir, "api.sock")]);
    assert.notEqual(out.code, 0);
    assert.match(out.stderr, /Failed to open the API socket/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stand-in: validates bodies and opens files like Firecracker", async () => {
  const fc = await start();
  try {
    assert.match(
      await refusal(fc.call({
        method: "PUT",
        path: "/machine-config",
        body: { vcpu_count: 2, mem_size_mib: 256, ht_enabled: true },
      })),
      /unknown field "ht_enabled"/,
    );
    assert.match(
      await refusal(fc.call({
        method: "PUT",
        path: "/boot-source",
        body: { kernel_image_path: join(fc.dir, "missing") },
      })),
      /The kernel file cannot be opened/,
    );
    const disk = join(fc.dir, "disk.img");
    await Deno.writeFile(disk, new Uint8Array(4096));
    assert.match(
      await refusal(fc.call({
        method: "PUT",
        path: "/drives/root",
        body: {
          drive_id: "work",
          path_on_host: disk,
          is_root_device: true,
          is_read_only: false,
        },
      })),
      /id from the path does not match/,
    );
    assert.match(
      await refusal(fc.call({
        method: "PUT",
        path: "/logger",
        body: { log_path: join(fc.dir, "not-created.log") },
      })),
      /Failed to open target file/,
    );
    assert.match(
      await refusal(fc.call({
        method: "PUT",
        path: "/network-interfaces/net0",
        body: { iface_id: "net0", host_dev_name: "bgtap-missing" },
      })),
      /Open tap device failed/,
    );
    assert.match(
      await refusal(fc.call({
        method: "PUT",
        path: "/actions",
        body: { action_type: "InstanceStart" },
      })),
      /without kernel configuration/,
    );
    assert.match(
      await refusal(
        fc.call({
          method: "PATCH",
          path: "/drives/root",
          body: { drive_id: "root" },
        }),
      ),
      /not supported before starting/,
    );
    assert.match(
      await refusal(fc.call({
        method: "PUT",
        path: "/machine-config",
        body: { vcpu_count: 1, mem_size_mib: 0 },
      })),
      /memory size is invalid/,
    );
    const kernel = join(fc.dir, "vmlinux");
    await Deno.writeFile(kernel, new Uint8Array(16));
    assert.match(
      await refusal(fc.call({
        method: "PUT",
        path: "/boot-source",
        body: { kernel_image_path: kernel, boot_args: "x".repeat(2048) },
      })),
      /kernel command line is invalid/,
    );
    // A known path with a method it does not take: 400, as Firecracker.
    const wrongMethod = await fc.call({
      method: "PATCH",
      path: "/boot-source",
    })
      .then(() => undefined, (e: unknown) => e);
    assert.ok(wrongMethod instanceof FirecrackerApiError);
    assert.equal(wrongMethod.status, 400);
    assert.match(wrongMethod.faultMessage, /Invalid request method/);
    // Accepted configuration is visible through the API.
    await fc.call({
      method: "PUT",
      path: "/machine-config",
      body: { vcpu_count: 2, mem_size_mib: 256 },
    });
    const machine = await fc.call({ method: "GET", path: "/machine-config" });
    assert.deepEqual(machine.body, { vcpu_count: 2, mem_size_mib: 256 });
  } finally {
    await fc.stop();
  }
});

const IMAGE_CACHE = join(E2E_CACHE_DIR, "images");

/**
 * A guest kernel to boot: `BANGER_TEST_KERNEL`, else the one in the image
 * cache that the e2e suite builds (`deno task e2e --image-only`).
 */
async function findKernel(): Promise<
  { kernel: string; initrd: string } | undefined
> {
  const explicit = Deno.env.get("BANGER_TEST_KERNEL");
  const dirs = explicit ? [join(explicit, "..")] : [];
  try {
    for await (const e of Deno.readDir(IMAGE_CACHE)) {
      if (e.isDirectory) dirs.push(join(IMAGE_CACHE, e.name));
    }
  } catch {
    // No cache here.
  }
  for (const dir of dirs) {
    const kernel = join(dir, "vmlinux");
    const initrd = join(dir, "initrd.img");
    if (await Deno.stat(kernel).then((i) => i.isFile, () => false)) {
      return { kernel, initrd };
    }
  }
  return undefined;
}
const guest = await findKernel();
// CI builds the image first and sets this, so the boot test cannot be
// skipped there without failing.
if (guest === undefined && Deno.env.get("BANGER_TEST_REQUIRE_GUEST") === "1") {
  throw new Error(
    `Cannot find a guest kernel: none under "${IMAGE_CACHE}" and BANGER_TEST_KERNEL is unset`,
  );
}

Deno.test({
  name: "stand-in: boots on InstanceStart, then refuses configuration",
  ignore: guest === undefined,
  async fn() {
    const fc = await start();
    try {
      const console = join(fc.dir, "console.log");
      await fc.call({
        method: "PUT",
        path: "/boot-source",
        body: {
          kernel_image_path: guest!.kernel,
          initrd_path: guest!.initrd,
          boot_args: "console=ttyS0 panic=-1 reboot=k",
        },
      });
      await fc.call({
        method: "PUT",
        path: "/machine-config",
        body: { vcpu_count: 1, mem_size_mib: 256 },
      });
      await fc.call({
        method: "PUT",
        path: "/serial",
        body: { serial_out_path: console },
      });
      await fc.call({
        method: "PUT",
        path: "/actions",
        body: { action_type: "InstanceStart" },
      });
      const info = await fc.call({ method: "GET", path: "/" });
      assert.equal((info.body as { state: string }).state, "Running");

      const postBoot = /not supported after starting the microVM/;
      assert.match(
        await refusal(
          fc.call({
            method: "PUT",
            path: "/machine-config",
            body: { vcpu_count: 1, mem_size_mib: 512 },
          }),
        ),
        postBoot,
      );
      assert.match(
        await refusal(
          fc.call({
            method: "PUT",
            path: "/boot-source",
            body: { kernel_image_path: guest!.kernel },
          }),
        ),
        postBoot,
      );
      assert.match(
        await refusal(
          fc.call({
            method: "PUT",
            path: "/actions",
            body: { action_type: "InstanceStart" },
          }),
        ),
        postBoot,
      );
      assert.match(
        await refusal(
          fc.call({
            method: "PUT",
            path: "/actions",
            body: { action_type: "SendCtrlAltDel" },
          }),
        ),
        /does not emulate SendCtrlAltDel/,
      );
      // The guest's kernel writes to the serial file.
      const deadline = Date.now() + 30_000;
      let text = "";
      while (Date.now() < deadline && !text.includes("Linux version")) {
        await new Promise((r) => setTimeout(r, 250));
        text = await Deno.readTextFile(console).catch(() => "");
      }
      assert.match(text, /Linux version/);
      assert.match(text, /Command line: .*pci=off/);
    } finally {
      await fc.stop();
    }
    // QEMU goes with the stand-in (parent-death signal).
    const left = await new Deno.Command("pgrep", { args: ["-f", fc.dir] })
      .output();
    assert.equal(new TextDecoder().decode(left.stdout).trim(), "");
  },
});
