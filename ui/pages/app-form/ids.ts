/** The DOM id of a field of the form's sections (VM settings and disks, interfaces and port maps), or null. */
export function sectionFieldId(field: string): string | null {
  let m = /^interfaces\.(\d+)(?:\.(network|addr|mac))?$/.exec(field);
  if (m) return `ifc-${m[2] ?? "network"}-${m[1]}`;
  m = /^interfaces\.(\d+)\.portMaps\.(\d+)\.(devicePort|appPort)$/.exec(field);
  if (m) return `pm-${m[3] === "appPort" ? "app" : "device"}-${m[1]}-${m[2]}`;
  m = /^vm\.disks\.(\d+)$/.exec(field);
  if (m) return `vm-disk-size-${m[1]}`;
  switch (field) {
    case "vm.tree":
      return "vm-tree";
    case "vm.imported":
      return "vm-imported";
    case "vm.disk":
      return "vm-disk";
    case "vm.startDelay":
      return "vm-start-delay";
    case "vm.cloudInit":
      return "vm-cloud-init";
    case "interfaces":
      return "ifc-add";
  }
  return null;
}
