/** A fault that stops evebox with one clear line (no stack trace): the CLI prints it and exits 1. */
export class StartupError extends Error {}
