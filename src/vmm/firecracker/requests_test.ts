/**
 * Contract tests: every request body banger sends, for every VM shape it
 * creates, validates against Firecracker's published API schema (v1.14.1,
 * with unknown fields refused as Firecracker's serde structs refuse them),
 * using a real JSON-schema validator.
 */
import assert from "node:assert/strict";
import { ApiSchema } from "../../../tests/firecracker_standin/schema.ts";
import { kernelCmdline } from "../../daemon/vms.ts";
import { CHROOT_KERNEL, chrootDrive } from "../../jailer/layout.ts";
import type { LaunchSpec } from "../types.ts";
import type { ApiRequest } from "./api.ts";
import {
  checkSpec,
  configureRequests,
  firecrackerBootArgs,
  type FirecrackerPaths,
  firecrackerPaths,
  INSTANCE_START,
} from "./requests.ts";

const schema = ApiSchema.load();

function spec(overrides: Partial<LaunchSpec> = {}): LaunchSpec {
  const dir = "/var/lib/banger/vms/0123456789ab";
  return {
    id: "0123456789ab",
    name: "calm-otter",
    vcpu: 2,
    memoryMib: 2048,
    kernel: "/var/lib/banger/images/debian/vmlinux",
    initrd: "/var/lib/banger/images/debian/initrd.img",
    cmdline: kernelCmdline(),
    drives: [
      { id: "root", path: `${dir}/root.img`, format: "raw", readOnly: false },
      { id: "work", path: `${dir}/work.ext4`, format: "raw", readOnly: false },
      { id: "seed", path: `${dir}/seed.ext4`, format: "raw", readOnly: true },
    ],
    net: { tap: "bgtap2", mac: "52:54:00:1e:00:02" },
    dir,
    controlSocket: "/run/banger/vmm/2.sock",
    consoleLog: `${dir}/console.log`,
    ...overrides,
  };
}

function hostPaths(s: LaunchSpec, serialApi: boolean): FirecrackerPaths {
  return firecrackerPaths(s, { jailed: false, serialApi });
}

function jailedPaths(s: LaunchSpec): FirecrackerPaths {
  return firecrackerPaths(s, { jailed: true, serialApi: true });
}

/** Every shape banger creates: Debian with initrd, direct and jailed,
 * with and without the serial API, a Firecracker-config kernel without
 * initrd, and the sizing extremes. */
const SHAPES: [string, LaunchSpec, FirecrackerPaths][] = [
  ["debian, direct", spec(), hostPaths(spec(), true)],
  ["debian, direct, pre-1.14", spec(), hostPaths(spec(), false)],
  ["debian, jailed", spec(), jailedPaths(spec())],
  [
    "firecracker-config kernel, no initrd",
    spec({ initrd: undefined }),
    jailedPaths(spec({ initrd: undefined })),
  ],
  [
    "one vcpu, small memory",
    spec({ vcpu: 1, memoryMib: 256 }),
    hostPaths(spec(), true),
  ],
  [
    "most vcpus, large memory",
    spec({ vcpu: 32, memoryMib: 8192 }),
    hostPaths(spec(), true),
  ],
];

function validate(request: ApiRequest) {
  return schema.validateRequest(request.method, request.path, request.body);
}

for (const [label, shape, paths] of SHAPES) {
  Deno.test(`configureRequests() bodies match the 1.14.1 schema: ${label}`, () => {
    const requests = [...configureRequests(shape, paths), INSTANCE_START];
    const routes = new Set<string>();
    for (const request of requests) {
      const result = validate(request);
      assert.ok(
        result.ok,
        `${request.method} ${request.path} ${JSON.stringify(request.body)}: ${
          result.ok ? "" : result.message
        }`,
      );
      routes.add(`${request.method} ${result.route.template}`);
    }
    for (
      const expected of [
        "PUT /logger",
        "PUT /metrics",
        "PUT /machine-config",
        "PUT /boot-source",
        "PUT /drives/{drive_id}",
        "PUT /network-interfaces/{iface_id}",
        "PUT /actions",
      ]
    ) {
      assert.ok(routes.has(expected), `no ${expected} request`);
    }
    assert.equal(routes.has("PUT /serial"), paths.serial !== undefined);
  });
}

Deno.test("the schema refuses an unknown field in every body banger sends", () => {
  const requests = [
    ...configureRequests(spec(), hostPaths(spec(), true)),
    INSTANCE_START,
  ];
  for (const request of requests) {
    const body = { ...(request.body as object), surprise: true };
    const result = validate({ ...request, body });
    assert.ok(!result.ok, `${request.path} accepted an unknown field`);
    assert.match(result.message, /unknown field "surprise"/);
  }
});

Deno.test("the schema refuses unknown nested fields and wrong types", () => {
  const drive = {
    drive_id: "root",
    path_on_host: "/x",
    is_root_device: true,
    is_read_only: false,
    rate_limiter: { bandwidth: { size: 1, refill_time: 1, burst: 2 } },
  };
  assert.ok(!validate({ method: "PUT", path: "/drives/root", body: drive }).ok);
  const machine = { vcpu_count: "2", mem_size_mib: 128 };
  assert.ok(
    !validate({ method: "PUT", path: "/machine-config", body: machine }).ok,
  );
  assert.ok(
    !validate({
      method: "PUT",
      path: "/actions",
      body: { action_type: "Reboot" },
    }).ok,
  );
});

Deno.test("the root drive is the root device and the rest are not", () => {
  const drives = configureRequests(spec(), hostPaths(spec(), true))
    .filter((r) => r.path.startsWith("/drives/"))
    .map((r) =>
      r.body as {
        drive_id: string;
        is_root_device: boolean;
        is_read_only: boolean;
      }
    );
  assert.deepEqual(
    drives.map((d) => [d.drive_id, d.is_root_device, d.is_read_only]),
    [["root", true, false], ["work", false, false], ["seed", false, true]],
  );
});

Deno.test("firecrackerPaths() names chroot files when jailed", () => {
  const paths = jailedPaths(spec());
  assert.equal(paths.kernel, CHROOT_KERNEL);
  assert.equal(paths.drives.work, chrootDrive("work"));
  assert.ok(Object.values(paths.drives).every((p) => !p.includes("/var/lib")));
  assert.equal(jailedPaths(spec({ initrd: undefined })).initrd, undefined);
});

Deno.test("firecrackerBootArgs() leaves root= to Firecracker and ends on reboot", () => {
  const args = firecrackerBootArgs(["console=ttyS0", "root=LABEL=x", "rw"]);
  assert.equal(args, "console=ttyS0 rw reboot=k");
});

Deno.test("checkSpec() refuses what Firecracker cannot boot", () => {
  assert.throws(
    () =>
      checkSpec(spec({
        drives: [{
          id: "root",
          path: "/x.qcow2",
          format: "qcow2",
          readOnly: false,
        }],
      })),
    /drive "root" is qcow2, Firecracker takes raw disks only/,
  );
  assert.throws(
    () => checkSpec(spec({ vcpu: 33 })),
    /33 vCPUs, it takes 1 to 32/,
  );
  assert.throws(() => checkSpec(spec({ drives: [] })), /no root drive/);
});

Deno.test("SendCtrlAltDel is never among the requests banger sends", () => {
  for (const [, shape, paths] of SHAPES) {
    const bodies = configureRequests(shape, paths).map((r) =>
      JSON.stringify(r.body)
    );
    assert.ok(!bodies.some((b) => b.includes("SendCtrlAltDel")));
  }
});
