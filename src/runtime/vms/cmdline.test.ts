import { describe, expect, test } from "bun:test";
import { buildQemuArgs, memoryPlugProblem, qemuValue, smbiosArg, vmPaths, vmSpecHash } from "./cmdline.ts";
import { cpuListText, parseCpuList } from "./eve.ts";
import type { VmSpec } from "./types.ts";
import { hostProblems, specProblems } from "./validate.ts";

const UUID = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
const spec: VmSpec = {
  appUuid: UUID,
  name: "router, edge",
  memoryKiB: 524288,
  vcpus: 2,
  mode: "legacy-bios",
  disks: [
    { path: "/persist/vols/a.qcow2", format: "qcow2", readOnly: false },
    { path: "/persist/blobs/b.iso", format: "raw", readOnly: true, cdrom: true },
  ],
  nics: [
    { kind: "user", hostfwd: [{ hostPort: 2222, guestPort: 22 }] },
    { kind: "tap", ifname: "ev1.2", mac: "02:16:3e:00:00:01", bridge: "ebbr0" },
  ],
  remoteConsole: false,
};
const paths = vmPaths("/run/evebox", UUID);

/** The value following each occurrence of `flag`. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

describe("buildQemuArgs", () => {
  const args = buildQemuArgs(spec, { paths, accelerator: "tcg", paused: true });

  test("identity, machine, accelerator, size", () => {
    expect(values(args, "-name")).toEqual(["guest=router,, edge,debug-threads=on"]);
    expect(values(args, "-uuid")).toEqual([UUID]);
    expect(values(args, "-machine")).toEqual(["q35,accel=tcg"]);
    expect(values(args, "-cpu")).toEqual(["max"]);
    expect(values(args, "-smp")).toEqual(["2"]);
    expect(values(args, "-m")).toEqual(["524288k"]);
    expect(args).toContain("-nodefaults");
    expect(args).not.toContain("-no-reboot");
    expect(args).not.toContain("-daemonize");
    expect(args.at(-1)).toBe("-S");
    expect(values(buildQemuArgs(spec, { paths, accelerator: "kvm" }), "-cpu")).toEqual(["host"]);
    expect(buildQemuArgs(spec, { paths, accelerator: "kvm" })).not.toContain("-S");
  });

  test("pidfile, QMP, serial and virtio console on unix sockets under run/vms/<uuid>", () => {
    expect(values(args, "-pidfile")).toEqual([`/run/evebox/vms/${UUID}/qemu.pid`]);
    expect(values(args, "-qmp")).toEqual([`unix:/run/evebox/vms/${UUID}/qmp.sock,server=on,wait=off`]);
    const chardevs = values(args, "-chardev");
    expect(chardevs[0]).toStartWith(`socket,id=serial0,path=/run/evebox/vms/${UUID}/serial.sock,server=on,wait=off,logfile=`);
    expect(values(args, "-serial")).toEqual(["chardev:serial0"]);
    expect(args.join(" ")).toContain(`-chardev file,id=firmware0,path=/run/evebox/vms/${UUID}/firmware.log -device isa-debugcon,iobase=0x402,chardev=firmware0`);
    expect(chardevs[1]).toBe(`socket,id=console0,path=/run/evebox/vms/${UUID}/console.sock,server=on,wait=off`);
    expect(values(args, "-device")).toContain("virtio-serial-pci,id=virtio-serial0");
    expect(values(args, "-device").some((d) => d.startsWith("virtconsole,chardev=console0"))).toBe(true);
  });

  test("no display without remoteConsole; VNC on a unix socket with it", () => {
    expect(values(args, "-display")).toEqual(["none"]);
    expect(args).not.toContain("-vnc");
    const vnc = buildQemuArgs({ ...spec, remoteConsole: true }, { paths, accelerator: "tcg" });
    expect(values(vnc, "-vnc")).toEqual([`unix:/run/evebox/vms/${UUID}/vnc.sock`]);
    expect(values(vnc, "-device")).toContain("VGA");
    expect(vnc).not.toContain("-display");
  });

  test("disks: -blockdev nodes with the format and the backing always stated; virtio-blk first in boot order, ISO as read-only IDE CD-ROM", () => {
    expect(args).not.toContain("-drive");
    const nodes = values(args, "-blockdev").map((b) => JSON.parse(b));
    const cache = { direct: false, "no-flush": false };
    expect(nodes).toEqual([
      { driver: "file", filename: "/persist/vols/a.qcow2", "node-name": "disk0-file", "read-only": false, discard: "unmap", cache },
      // "backing": null: QEMU does not open the backing file the header names.
      { driver: "qcow2", file: "disk0-file", "node-name": "disk0", "read-only": false, discard: "unmap", cache, backing: null },
      { driver: "file", filename: "/persist/blobs/b.iso", "node-name": "disk1-file", "read-only": true, discard: "unmap", cache },
      { driver: "raw", file: "disk1-file", "node-name": "disk1", "read-only": true, discard: "unmap", cache },
    ]);
    expect(values(args, "-device")).toContain("virtio-blk-pci,drive=disk0,bootindex=0,write-cache=on");
    expect(values(args, "-device")).toContain("ide-cd,drive=disk1,bootindex=1");
    const ro = buildQemuArgs({ ...spec, disks: [{ path: "/x,y.raw", format: "raw", readOnly: true, bus: "ide" }] }, { paths, accelerator: "tcg" });
    expect(values(ro, "-blockdev").map((b) => JSON.parse(b)["read-only"])).toEqual([true, true]);
    expect(JSON.parse(values(ro, "-blockdev")[0]!).filename).toBe("/x,y.raw"); // JSON: no comma escaping
    expect(values(ro, "-device")).toContain("ide-hd,drive=disk0,bootindex=0,write-cache=on");
  });

  test("an overlay's backing is the checked image, read-only, with its format; it has no backing itself", () => {
    const over = buildQemuArgs(
      { ...spec, disks: [{ path: "/persist/vols/a.qcow2", format: "qcow2", readOnly: false }] },
      { paths, accelerator: "tcg", backings: [{ path: "/persist/blobs/base", format: "qcow2" }] },
    );
    const nodes = values(over, "-blockdev").map((b) => JSON.parse(b));
    expect(nodes.map((n) => [n["node-name"], n.driver, n.filename ?? n.file, n["read-only"], n.backing])).toEqual([
      ["disk0-base-file", "file", "/persist/blobs/base", true, undefined],
      ["disk0-base", "qcow2", "disk0-base-file", true, null],
      ["disk0-file", "file", "/persist/vols/a.qcow2", false, undefined],
      ["disk0", "qcow2", "disk0-file", false, "disk0-base"],
    ]);
  });

  test("nics: user networking with host forwards, taps without scripts, no option ROM", () => {
    expect(values(args, "-netdev")).toEqual([
      "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22",
      "tap,id=net1,ifname=ev1.2,script=no,downscript=no",
    ]);
    expect(values(args, "-device")).toContain("virtio-net-pci,netdev=net0,romfile=");
    expect(values(args, "-device")).toContain("virtio-net-pci,netdev=net1,romfile=,mac=02:16:3e:00:00:01");
  });

  test("UEFI: OVMF code read-only and the VM's own variable store", () => {
    const uefi = buildQemuArgs({ ...spec, mode: "uefi" }, { paths, accelerator: "tcg" });
    expect(values(uefi, "-drive").slice(0, 2)).toEqual([
      "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
      `if=pflash,format=raw,unit=1,file=/run/evebox/vms/${UUID}/OVMF_VARS.fd`,
    ]);
    const kept = buildQemuArgs({ ...spec, mode: "uefi", firmwareVarsPath: "/persist/vols/vars.fd" }, { paths, accelerator: "tcg" });
    expect(values(kept, "-drive")[1]).toBe("if=pflash,format=raw,unit=1,file=/persist/vols/vars.fd");
    expect(args.some((a) => a.includes("pflash"))).toBe(false);
  });

  test("cloud-init seed as a read-only disk; direct kernel boot", () => {
    const withSeed = buildQemuArgs(
      { ...spec, disks: [], kernel: "/k", initrd: "/i", cmdline: "console=ttyS0" },
      { paths, accelerator: "tcg", seedImage: paths.seed },
    );
    expect(values(withSeed, "-blockdev").slice(-2).map((b) => JSON.parse(b))).toMatchObject([
      { driver: "file", filename: paths.seed, "read-only": true },
      { driver: "raw", "node-name": "cidata", "read-only": true },
    ]);
    expect(values(withSeed, "-kernel")).toEqual(["/k"]);
    expect(values(withSeed, "-initrd")).toEqual(["/i"]);
    expect(values(withSeed, "-append")).toEqual(["console=ttyS0"]);
  });

  test("passthrough: host serial ports after the console's, usb-host by bus/port or vendor:product on an xHCI, vfio-pci by address", () => {
    const args = buildQemuArgs(
      { ...spec, passthrough: { serial: ["/dev/ttyS0", "/dev/pts/7"], usb: [{ bus: 1, port: "2.3" }, { vendorId: 0x0403, productId: 0x6001 }], pci: ["0000:00:02.0", "0000:00:02.1"] } },
      { paths, accelerator: "tcg" },
    );
    // the console's serial port first (the guest's ttyS0), then the host's (ttyS1, ttyS2)
    expect(values(args, "-serial")).toEqual(["chardev:serial0", "chardev:hostserial0", "chardev:hostserial1"]);
    expect(values(args, "-chardev").filter((c) => c.startsWith("serial,"))).toEqual(["serial,id=hostserial0,path=/dev/ttyS0", "serial,id=hostserial1,path=/dev/pts/7"]);
    const devices = values(args, "-device");
    expect(devices).toContain("qemu-xhci,id=xhci");
    expect(devices).toContain("usb-host,bus=xhci.0,hostbus=1,hostport=2.3,id=hostusb0");
    expect(devices).toContain("usb-host,bus=xhci.0,vendorid=0x0403,productid=0x6001,id=hostusb1");
    expect(devices.filter((d) => d.startsWith("vfio-pci"))).toEqual(["vfio-pci,host=0000:00:02.0,id=hostpci0", "vfio-pci,host=0000:00:02.1,id=hostpci1"]);
    // without adapters: none of it, and the spec hash of such a VM is unchanged by the new field
    const plain = buildQemuArgs(spec, { paths, accelerator: "tcg" });
    expect(plain.some((a) => a.includes("hostserial") || a.includes("usb-host") || a.includes("vfio-pci") || a.includes("xhci"))).toBe(false);
    expect(vmSpecHash({ ...spec, passthrough: { serial: ["/dev/ttyS0"], usb: [], pci: [] } })).not.toBe(vmSpecHash(spec));
  });

  test("qemuValue doubles commas", () => {
    expect(qemuValue("a,b,,c")).toBe("a,,b,,,,c");
  });
});

describe("vmSpecHash", () => {
  test("stable, and changes with anything that needs a new QEMU", () => {
    const base = vmSpecHash(spec);
    expect(vmSpecHash(structuredClone(spec))).toBe(base);
    expect(vmSpecHash({ ...spec, memoryKiB: 1 << 20 })).not.toBe(base);
    expect(vmSpecHash({ ...spec, cloudInitUserData: "#cloud-config" })).not.toBe(base);
    expect(vmSpecHash({ ...spec, remoteConsole: true })).not.toBe(base);
    expect(vmSpecHash({ ...spec, disks: spec.disks.slice(1) })).not.toBe(base);
  });
});

describe("memory hot-plug and CPU placement", () => {
  test("maxmem above memory: -m size,slots,maxmem (2 MiB aligned); the hash moves only when set", () => {
    const hot = { ...spec, maxMemoryKiB: 1048577 };
    expect(values(buildQemuArgs(hot, { paths, accelerator: "tcg" }), "-m")).toEqual(["size=524288k,slots=4,maxmem=1050624k"]);
    expect(values(buildQemuArgs({ ...spec, maxMemoryKiB: 524288 }, { paths, accelerator: "tcg" }), "-m")).toEqual(["524288k"]);
    expect(vmSpecHash(hot)).not.toBe(vmSpecHash(spec));
    expect(vmSpecHash({ ...spec, cpuAffinity: { cpus: [0], pinned: true } })).not.toBe(vmSpecHash(spec));
    expect(vmSpecHash({ ...spec, maxMemoryKiB: undefined, cpuAffinity: undefined })).toBe(vmSpecHash(spec));
  });

  test("boot order: usb puts the USB devices first and the disks after; nousb boots only what has a boot index", () => {
    const usb = { ...spec, passthrough: { serial: [], usb: [{ vendorId: 0x1234, productId: 0x5678 }], pci: [] } };
    const first = buildQemuArgs({ ...usb, bootOrder: "usb" }, { paths, accelerator: "tcg" });
    expect(values(first, "-device").filter((d) => /bootindex/.test(d)).map((d) => d.split(",")[0] + " " + d.match(/bootindex=\d+/)![0])).toEqual([
      "virtio-blk-pci bootindex=1",
      "ide-cd bootindex=2",
      "usb-host bootindex=0",
    ]);
    const none = buildQemuArgs({ ...usb, bootOrder: "nousb" }, { paths, accelerator: "tcg" });
    expect(values(none, "-boot")).toEqual(["strict=on"]);
    expect(values(none, "-device").find((d) => d.startsWith("usb-host"))).not.toContain("bootindex");
    expect(values(buildQemuArgs(usb, { paths, accelerator: "tcg" }), "-boot")).toEqual([]);
    expect(vmSpecHash({ ...usb, bootOrder: "usb" })).toBe(vmSpecHash(usb)); // at the next start, as EVE
  });

  test("EVE's CPU lists", () => {
    expect(parseCpuList("0-2,5,6")).toEqual([0, 1, 2, 5, 6]);
    expect(parseCpuList(" 3,1,1 ")).toEqual([3, 1]);
    expect(parseCpuList("")).toMatch(/not a CPU list/);
    expect(parseCpuList("0;rm -rf")).toMatch(/not a CPU list/);
    expect(parseCpuList("0-99999")).toMatch(/beyond 4095/);
    expect(cpuListText([5, 0, 2, 1, 6])).toBe("0-2,5-6");
  });

  test("validation: pinning needs a CPU per vCPU, CPUs and maxmem must exist on the host", () => {
    expect(specProblems({ ...spec, cpuAffinity: { cpus: [0], pinned: true } })).toEqual(["cpus: pin_cpu gives each vCPU a CPU of its own, but the list has 1 CPU(s) for 2 vCPU(s)"]);
    expect(specProblems({ ...spec, cpuAffinity: { cpus: [], pinned: true } })).toEqual([]);
    expect(specProblems({ ...spec, maxMemoryKiB: 1024 })).toEqual(["maxMemoryKiB: 1024 is not a whole number of KiB above memoryKiB (524288)"]);
    const host = { memTotalKiB: 1024 * 1024, memAvailableKiB: 1024 * 1024, cpus: 2 };
    const p = hostProblems({ ...spec, disks: [], kernel: undefined, cpuAffinity: { cpus: [1, 2, 3], pinned: false }, maxMemoryKiB: 4 * 1024 * 1024 }, host, paths, { code: "/x", vars: "/y" });
    expect(p).toEqual(["cpus: CPU 2, 3 is not one of this host's CPUs (0-1)", "maxMemoryKiB: 4194304 KiB (4096 MiB) is more memory than this host has (1024 MiB)"]);
  });
});

describe("spec validation", () => {
  test("a good spec has no problems", () => {
    expect(specProblems(spec)).toEqual([]);
  });

  test("every problem is listed with its field", () => {
    const bad = specProblems({
      ...spec,
      appUuid: "nope",
      memoryKiB: 1000,
      vcpus: 0,
      mode: "bios" as never,
      disks: [{ path: "", format: "iso" as never, readOnly: true }],
      nics: [{ kind: "tap", ifname: "much-too-long-name0", mac: "zz" }, { kind: "user", hostfwd: [{ hostPort: 0, guestPort: 22 }] }],
      initrd: "/i",
    });
    expect(bad).toEqual([
      'appUuid: "nope" is not a UUID',
      "memoryKiB: 1000 is not a whole number of KiB of at least 16384 (16 MiB)",
      "vcpus: 0 is not a whole number ≥ 1",
      'mode: "bios" is neither "legacy-bios" nor "uefi"',
      "disks[0].path: empty",
      'disks[0].format: "iso" is not one of raw, qcow2, qcow, vmdk, vhdx, vpc',
      'nics[0].mac: "zz" is not a MAC address',
      'nics[0].ifname: "much-too-long-name0" is not an interface name (1-15 of A-Z a-z 0-9 _ . -)',
      "nics[1].hostfwd[0].hostPort: 0 is not a port",
      "kernel: initrd or cmdline given without a kernel",
    ]);
  });

  test("host: too much memory, too many vCPUs, missing files, long socket paths", () => {
    const host = { memTotalKiB: 2 * 1024 * 1024, memAvailableKiB: 1024 * 1024, cpus: 2 };
    const problems = hostProblems(
      { ...spec, memoryKiB: 4 * 1024 * 1024, vcpus: 4, kernel: "/nonexistent/vmlinuz" },
      host,
      vmPaths(`/tmp/${"x".repeat(80)}`, UUID),
      { code: "/usr/share/OVMF/OVMF_CODE_4M.fd", vars: "/usr/share/OVMF/OVMF_VARS_4M.fd" },
    );
    expect(problems[0]).toBe("memoryKiB: 4194304 KiB (4096 MiB) is more than this host has available (1024 MiB available of 2048 MiB)");
    expect(problems[1]).toBe("vcpus: 4 is more than this host's 2 CPUs");
    expect(problems).toContain("disks[0].path: /persist/vols/a.qcow2 does not exist or is not a file");
    expect(problems).toContain("kernel: /nonexistent/vmlinuz does not exist or is not a file");
    expect(problems.at(-1)).toMatch(/^run directory: socket path .* is longer than 107 bytes/);
  });
});

describe("VmConfig beyond sizing: VNC on TCP, license tables, QEMU's memory limit, live memory", () => {
  test("vncTcp: a second VNC server on 0.0.0.0:<display> with password=on (the password never on the command line); license tables as -acpitable", () => {
    const vnc = buildQemuArgs({ ...spec, remoteConsole: true, vncTcp: { display: 7, password: "s3cret,x" } }, { paths, accelerator: "tcg", acpiTables: ["/sys/firmware/acpi/tables/MSDM"] });
    expect(values(vnc, "-vnc")).toEqual([`unix:/run/evebox/vms/${UUID}/vnc.sock`, "0.0.0.0:7,password=on,id=vnc-tcp"]);
    expect(vnc.join(" ")).not.toContain("s3cret");
    expect(values(vnc, "-acpitable")).toEqual(["file=/sys/firmware/acpi/tables/MSDM"]);
    expect(values(buildQemuArgs({ ...spec, remoteConsole: true }, { paths, accelerator: "tcg" }), "-vnc")).toHaveLength(1);
    expect(buildQemuArgs({ ...spec, oemLicenseTables: true }, { paths, accelerator: "tcg" })).not.toContain("-acpitable");
    // With the tables, the host's SMBIOS identity: commas doubled, empty fields left out, nothing without fields.
    expect(values(buildQemuArgs(spec, { paths, accelerator: "tcg", smbiosSystem: { manufacturer: "ACME, Inc.", product: "Box", serial: "" } }), "-smbios")).toEqual(["type=1,manufacturer=ACME,, Inc.,product=Box"]);
    expect(smbiosArg({ serial: "" })).toBeNull();
  });

  test("validation: a TCP VNC port needs a display 0-99, a password and remoteConsole; vmmOverheadKiB a whole number", () => {
    expect(specProblems({ ...spec, remoteConsole: true, vncTcp: { display: 1, password: "pw" } })).toEqual([]);
    expect(specProblems({ ...spec, vncTcp: { display: 100, password: "" } })).toEqual([
      "vncTcp: a TCP VNC port without remoteConsole (no display)",
      "vncTcp.display: 100 is not a display 0-99 (TCP port 5900 + display)",
      "vncTcp.password: a TCP VNC port is never opened without a password",
    ]);
    expect(specProblems({ ...spec, vmmOverheadKiB: 1.5 })).toEqual(["vmmOverheadKiB: 1.5 is not a whole number of KiB ≥ 1"]);
  });

  test("the hash: each new field moves it only when set; without memory it tells a change of memory alone", () => {
    const base = vmSpecHash(spec);
    expect(vmSpecHash({ ...spec, vncTcp: undefined, vmmOverheadKiB: undefined, oemLicenseTables: undefined })).toBe(base);
    for (const more of [{ vmmOverheadKiB: 65536 }, { oemLicenseTables: true }, { remoteConsole: true, vncTcp: { display: 0, password: "a" } }]) expect(vmSpecHash({ ...spec, ...more })).not.toBe(base);
    expect(vmSpecHash({ ...spec, memoryKiB: 1 << 20 }, { memory: false })).toBe(vmSpecHash(spec, { memory: false }));
    expect(vmSpecHash({ ...spec, vcpus: 1 }, { memory: false })).not.toBe(vmSpecHash(spec, { memory: false }));
  });

  test("memoryPlugProblem: raised within maxmem by whole 2 MiB with a free slot plugs; lowered, beyond, unaligned, no headroom or no slot need a restart", () => {
    const hot = { ...spec, memoryKiB: 256 * 1024, maxMemoryKiB: 1024 * 1024 };
    expect(memoryPlugProblem(hot, 512 * 1024, 4)).toBeNull();
    expect(memoryPlugProblem(hot, 1024 * 1024, 1)).toBeNull();
    expect(memoryPlugProblem(hot, 128 * 1024, 4)).toBe("memory lowered from 256 MiB to 128 MiB: memory is not taken out of a running guest");
    expect(memoryPlugProblem(hot, 2048 * 1024, 4)).toBe("memory raised from 256 MiB to 2048 MiB: beyond the maxmem it was started with (1024 MiB)");
    expect(memoryPlugProblem(hot, 256 * 1024 + 1024, 4)).toBe("memory raised by 1024 KiB: a plugged DIMM is a whole number of 2 MiB");
    expect(memoryPlugProblem(hot, 512 * 1024, 0)).toBe("memory raised from 256 MiB to 512 MiB: all 4 memory slots are used");
    expect(memoryPlugProblem({ ...hot, maxMemoryKiB: undefined }, 512 * 1024, 4)).toBe("memory raised from 256 MiB to 512 MiB: the VM was started without maxmem (no hot-plug headroom)");
  });
});
