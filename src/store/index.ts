export { StoreTooNewError } from "./migrate.ts";
export * from "./store.ts";
