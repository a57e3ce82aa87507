/**
 * Files that banger installs into its golden Debian image.
 *
 * The guest learns its identity (hostname, address, gateway, resolver, ssh
 * host key, authorized key) from a small read-only "seed" disk labelled
 * `banger-seed` that the daemon writes before every start. Debian's kernels
 * have no `ip=` support, so a oneshot unit applies the seed before sshd
 * starts.
 *
 * @module
 */

/** Label of the per-VM seed disk the guest reads its configuration from. */
export const SEED_LABEL = "banger-seed";
/** Label of the per-VM work disk mounted at `/root`. */
export const WORK_LABEL = "banger-work";
/** Label of the image's root filesystem. */
export const ROOT_LABEL = "banger-root";
/** Line the guest prints on its console once its network is configured. */
export const GUEST_READY_MARKER = "banger-guest: ready";

/** Applies the seed disk: runs as root inside the guest at every boot. */
export const GUEST_INIT_SCRIPT = `#!/bin/sh
# Configures this banger guest from its seed disk. Installed by banger.
set -eu
seed=/run/banger/seed
mkdir -p "$seed"
mount -o ro "/dev/disk/by-label/${SEED_LABEL}" "$seed"
# shellcheck disable=SC1091
. "$seed/guest.env"

hostname "$BANGER_HOSTNAME"
echo "$BANGER_HOSTNAME" > /etc/hostname
printf '127.0.0.1 localhost\\n127.0.1.1 %s\\n' "$BANGER_HOSTNAME" > /etc/hosts
printf 'nameserver %s\\n' "$BANGER_DNS" > /etc/resolv.conf

# The interface is found by the MAC address banger gave it, not by name.
iface=""
for dev in /sys/class/net/*; do
  if [ "$(cat "$dev/address")" = "$BANGER_MAC" ]; then iface=$(basename "$dev"); fi
done
[ -n "$iface" ] || { echo "banger-guest: no interface with MAC $BANGER_MAC" >&2; exit 1; }
ip link set lo up
ip link set "$iface" up
ip addr replace "$BANGER_ADDRESS/$BANGER_PREFIX" dev "$iface"
ip route replace default via "$BANGER_GATEWAY" dev "$iface"

# Fresh host key per VM, generated on the host and handed in by the seed.
rm -f /etc/ssh/ssh_host_*
install -m 600 "$seed/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 644 "$seed/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub

# The work disk was written by the host's (possibly unprivileged) daemon;
# sshd's StrictModes wants root to own the home and its .ssh.
chown root:root /root
for f in /root/.bashrc /root/.profile; do
  if [ -e "$f" ]; then chown root:root "$f"; fi
done
install -d -m 700 -o root -g root /root/.ssh
install -m 600 "$seed/authorized_keys" /root/.ssh/authorized_keys
if [ -f "$seed/gitconfig" ]; then install -m 644 "$seed/gitconfig" /root/.gitconfig; fi
umount "$seed"
echo "${GUEST_READY_MARKER} host=$BANGER_HOSTNAME address=$BANGER_ADDRESS" > /dev/console
`;

/** systemd's name for the seed disk's by-label device node. */
const SEED_DEVICE_UNIT = `dev-disk-by\\x2dlabel-${
  SEED_LABEL.replaceAll("-", "\\x2d")
}.device`;

/** systemd unit that runs {@linkcode GUEST_INIT_SCRIPT} before sshd. */
export const GUEST_INIT_UNIT = `[Unit]
Description=Apply banger seed configuration
DefaultDependencies=no
Requires=${SEED_DEVICE_UNIT}
After=${SEED_DEVICE_UNIT} local-fs.target systemd-udevd.service
RequiresMountsFor=/root
Before=ssh.service network.target
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/banger-guest-init
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`;

/** The guest's mount table: root by label, the work disk at /root. */
export const GUEST_FSTAB = `LABEL=${ROOT_LABEL} / ext4 rw,relatime 0 1
LABEL=${WORK_LABEL} /root ext4 rw,relatime,x-systemd.device-timeout=60s 0 2
`;

/** sshd settings: key-only root login, no DNS lookups, one host key. */
export const GUEST_SSHD_CONFIG = `PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
`;

/** initramfs-tools settings: only the modules a banger VM boots from. */
export const INITRAMFS_CONF = `MODULES=list
COMPRESS=gzip
`;

/** Modules the initrd loads: virtio transports, block and ext4's helpers. */
export const INITRAMFS_MODULES = `virtio_mmio
virtio_pci
virtio_blk
virtio_net
`;

/**
 * Units that only slow a disposable VM down (measured under TCG: scrub,
 * gettys, periodic maintenance).
 */
export const MASKED_UNITS = [
  "e2scrub_reap.service",
  "e2scrub_all.timer",
  "apt-daily.timer",
  "apt-daily-upgrade.timer",
  "man-db.timer",
  "fstrim.timer",
  "getty-static.service",
  "getty@tty1.service",
  "serial-getty@ttyS0.service",
  "systemd-update-utmp.service",
  "systemd-update-utmp-runlevel.service",
  "systemd-timesyncd.service",
  "systemd-journal-flush.service",
  "dpkg-db-backup.timer",
  "modprobe@.service",
  "sys-kernel-debug.mount",
  "sys-kernel-tracing.mount",
  "dev-hugepages.mount",
  "dev-mqueue.mount",
];
