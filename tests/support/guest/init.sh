#!/bin/busybox sh
# PID 1 of the evebox test guest: a busybox initramfs booted by syslinux from a FAT disk.
# It prints a boot line on the serial port (ttyS0) and on the virtio console (hvc0), keeps a shell on each,
# powers off on the ACPI power button (busybox acpid) and prints a NoCloud seed's user-data when one is attached.
# `udhcpc -i eth0 -s /etc/udhcpc.sh` configures a virtio NIC from a DHCP lease.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp /mnt/seed /etc/acpi/PWRF
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_console virtio_blk \
  failover net_failover virtio_net button evdev fat vfat nls_cp437 nls_ascii; do
  insmod "/lib/modules/$m.ko" 2>/dev/null
done

cat >/etc/acpi/PWRF/00000080 <<'EOS'
#!/bin/sh
echo "evebox-guest: ACPI power button, powering off" >/dev/ttyS0
sleep 0.2 # let the UART drain the line before the machine goes
poweroff -f
EOS
chmod 0755 /etc/acpi/PWRF/00000080
cat >/etc/udhcpc.sh <<'EOS'
#!/bin/sh
case "$1" in
  deconfig) ip link set "$interface" up; ip addr flush dev "$interface" ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    ;;
esac
exit 0
EOS
chmod 0755 /etc/udhcpc.sh
ip link set lo up
i=0
while [ ! -e /dev/input/event0 ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
acpid -c /etc/acpi -l /tmp/acpid.log

seed=$(findfs LABEL=cidata 2>/dev/null || findfs LABEL=CIDATA 2>/dev/null)
if [ -n "$seed" ] && mount -t vfat -o ro "$seed" /mnt/seed 2>/dev/null; then
  [ -f /mnt/seed/user-data ] && sed 's/^/evebox-guest: user-data: /' /mnt/seed/user-data >/dev/ttyS0
  umount /mnt/seed
fi

i=0
while [ ! -e /dev/hvc0 ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done

# One shell per console, respawned; the shell itself prints the boot line, so the port is open when it shows.
console() {
  while true; do
    setsid -c sh -c "echo \"EVEBOX-GUEST-READY on $1 kernel \$(uname -r)\"; PS1='guest# ' exec sh -i" <"$1" >"$1" 2>&1
    sleep 1
  done
}
console /dev/ttyS0 &
[ -e /dev/hvc0 ] && console /dev/hvc0 &
while true; do sleep 3600; done
