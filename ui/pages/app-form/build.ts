// The documents the app form's values make (create and change, containers and VMs), and the device's own
// validation of them mapped to the form's fields: what Apps and AppDetail propose and check.
import { addContainerApp, type Doc, type FieldProblem, problemField, updateApp } from "../../config-edit";
import { checkDoc, type HostView } from "../../device-check";
import { writeInterfaces } from "../../interfaces-edit";
import { writeAdapters } from "../../adapters-edit";
import { deviceModel } from "../../../src/config/model.ts";
import { addVmApp, updateVmApp } from "../../vm-edit";
import { type AppFormValues, toChanges, toCreateInput } from "../../components/AppForm";
import { toInterfaces, toVmChanges, toVmInput } from "./values";
import type { ImportedImage } from "../../images";

const appNamed = (doc: Doc, name: string): Doc | undefined => (doc.apps ?? []).find((a: Doc) => a.displayname === name);

/** The document with the new app; throws when the name is taken meanwhile. */
export function createDoc(current: Doc | null, v: AppFormValues, imported: readonly ImportedImage[] = []): Doc {
  const name = v.name.trim();
  if (appNamed(current ?? {}, name)) throw new Error(`There is already an app named ${name}. Choose another name.`);
  if (v.kind === "vm") {
    const vm = addVmApp(current, toVmInput(v.name, v.memory, v.vcpus, v.vm, v.interfaces, imported));
    writeAdapters(vm, appNamed(vm, name)!, v.adapters);
    return vm;
  }
  const next = addContainerApp(current, toCreateInput(v, imported));
  writeInterfaces(appNamed(next, name)!, toInterfaces(v.interfaces));
  return next;
}

/** The document with the app's changes. */
export function updateDoc(current: Doc, uuid: string, v: AppFormValues, envEditable: boolean): Doc {
  if (v.kind === "vm") {
    const vm = updateVmApp(current, uuid, toVmChanges(v.memory, v.vcpus, v.vm, v.interfaces));
    writeAdapters(vm, (vm.apps as Doc[]).find((a) => a.uuidandversion?.uuid === uuid)!, v.adapters);
    return vm;
  }
  const next = updateApp(current, uuid, toChanges(v, envEditable));
  writeInterfaces((next.apps as Doc[]).find((a) => a.uuidandversion?.uuid === uuid)!, toInterfaces(v.interfaces));
  return next;
}

/** The device's problems with the app in `sent`, at the form's fields (problems of other objects are not this form's). */
export function appFieldProblems(sent: Doc, uuid: string | undefined, problems: { path: string; message: string }[], kind: AppFormValues["kind"], keepUnmapped = false): FieldProblem[] {
  const out: FieldProblem[] = [];
  for (const p of problems) {
    let field = uuid ? problemField(sent, uuid, p.path) : null;
    if (field === "env" && kind === "vm") field = "vm.cloudInit";
    if (field === null && !keepUnmapped) continue;
    out.push({ field: field ?? "", message: p.message });
  }
  return out;
}

/** The form's `check`: the document it would send, validated by the device's own code against the device's facts. */
export function appCheck(doc: Doc | null, host: HostView | null, mode: "create" | "edit", uuid?: string, imported: readonly ImportedImage[] = []) {
  return (v: AppFormValues, envEditable: boolean): FieldProblem[] => {
    let sent: Doc;
    try {
      sent = mode === "create" ? createDoc(doc, v, imported) : updateDoc(doc ?? {}, uuid!, v, envEditable);
    } catch (e) {
      return [{ field: "name", message: (e as Error).message }];
    }
    const id = mode === "create" ? appNamed(sent, v.name.trim())?.uuidandversion?.uuid : uuid;
    return appFieldProblems(sent, id, checkDoc(sent, host), v.kind);
  };
}

/** The network instances of the document, as the interfaces section offers them. */
export function networksOf(doc: Doc | null): { uuid: string; name: string; kind: string; subnet: string | null }[] {
  if (!doc) return [];
  return deviceModel(doc).networkInstances.map((n) => ({ uuid: n.uuid, name: n.name, kind: n.kind === "switch" ? "Switch" : "Local", subnet: n.subnet }));
}
