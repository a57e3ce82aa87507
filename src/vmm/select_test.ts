import assert from "node:assert/strict";
import { chooseVmm } from "./select.ts";

const FC = "/usr/local/bin/firecracker";

Deno.test("chooseVmm() auto takes Firecracker only with KVM and a binary", () => {
  const auto = { vmm: "auto", firecrackerBin: "firecracker" } as const;
  assert.equal(
    chooseVmm(auto, { accel: "kvm", firecrackerPath: FC }),
    "firecracker",
  );
  assert.equal(chooseVmm(auto, { accel: "tcg", firecrackerPath: FC }), "qemu");
  assert.equal(
    chooseVmm(auto, { accel: "kvm", firecrackerPath: undefined }),
    "qemu",
  );
});

Deno.test("chooseVmm() honours an explicit choice", () => {
  assert.equal(
    chooseVmm({ vmm: "qemu", firecrackerBin: "firecracker" }, {
      accel: "kvm",
      firecrackerPath: FC,
    }),
    "qemu",
  );
  // An explicit firecracker runs even without hardware virtualization
  // (the stand-in), but needs the binary.
  assert.equal(
    chooseVmm({ vmm: "firecracker", firecrackerBin: FC }, {
      accel: "tcg",
      firecrackerPath: FC,
    }),
    "firecracker",
  );
  assert.throws(
    () =>
      chooseVmm({ vmm: "firecracker", firecrackerBin: "/opt/fc" }, {
        accel: "kvm",
        firecrackerPath: undefined,
      }),
    /"firecracker_bin" is "\/opt\/fc", which does not resolve/,
  );
});
