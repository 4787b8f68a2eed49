// A small history-API router. The server answers index.html for every path outside /api, so a deep link such as
// /apps or /setup?token=… loads the app, which then reads the route from `location`.
import type { ComponentChildren, PartialAnchorHTMLAttributes, TargetedMouseEvent } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";

export interface Location {
  /** Normalised pathname: no trailing slash except for "/". */
  path: string;
  query: URLSearchParams;
}

const listeners = new Set<() => void>();
let listeningToPopstate = false;

function notify(): void {
  for (const listener of listeners) listener();
}

function subscribe(listener: () => void): () => void {
  if (!listeningToPopstate) {
    window.addEventListener("popstate", notify);
    listeningToPopstate = true;
  }
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function normalisePath(pathname: string): string {
  const trimmed = pathname.replace(/\/+$/, "");
  return trimmed === "" ? "/" : trimmed;
}

/** Go to an in-app path ("/apps", "/login?next=%2Fapps"). `replace` rewrites the current history entry. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  const url = new URL(to, window.location.href);
  if (url.origin !== window.location.origin) {
    window.location.assign(url.href);
    return;
  }
  const target = url.pathname + url.search + url.hash;
  const current = window.location.pathname + window.location.search + window.location.hash;
  if (options.replace) window.history.replaceState(null, "", target);
  else if (target !== current) window.history.pushState(null, "", target);
  notify();
}

/** The current location; re-renders the caller when it changes. */
export function useLocation(): Location {
  const [href, setHref] = useState(currentHref);
  useEffect(() => {
    const update = () => setHref(currentHref());
    const unsubscribe = subscribe(update);
    update(); // catch a change between render and subscription
    return unsubscribe;
  }, []);
  return useMemo(() => {
    const url = new URL(href);
    return { path: normalisePath(url.pathname), query: url.searchParams };
  }, [href]);
}

function currentHref(): string {
  return window.location.href;
}

/**
 * Match a path against a pattern like "/apps/:uuid" or "/docs/*". Returns the decoded parameters
 * ("*" captures the rest under the key "*"), or null when the path does not match.
 */
export function matchRoute(pattern: string, path: string): Record<string, string> | null {
  const want = split(pattern);
  const have = split(path);
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const segment = want[i]!;
    if (segment === "*") {
      params["*"] = have.slice(i).map(decode).join("/");
      return params;
    }
    const value = have[i];
    if (value === undefined) return null;
    if (segment.startsWith(":")) params[segment.slice(1)] = decode(value);
    else if (segment !== value) return null;
  }
  return have.length === want.length ? params : null;
}

function split(path: string): string[] {
  return normalisePath(path).split("/").filter(Boolean);
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Is `path` the page `href`, or (for prefixes other than "/") below it? Used for aria-current in navigation. */
export function isActivePath(href: string, path: string): boolean {
  const target = normalisePath(href);
  if (target === "/") return path === "/";
  return path === target || path.startsWith(`${target}/`);
}

/** Only accept an in-app path as a place to return to after signing in. */
export function safeReturnPath(value: string | null | undefined): string | null {
  if (!value || !value.startsWith("/") || value.startsWith("//") || value.startsWith("/\\")) return null;
  return value;
}

type AnchorProps = Omit<PartialAnchorHTMLAttributes<HTMLAnchorElement>, "href" | "role"> & {
  href: string;
  children?: ComponentChildren;
};

/** An <a> that navigates inside the app; modified clicks (new tab, download…) keep the browser's behaviour. */
export function Link({ href, onClick, ...rest }: AnchorProps) {
  const handleClick = (event: TargetedMouseEvent<HTMLAnchorElement>) => {
    if (typeof onClick === "function") onClick(event);
    if (
      event.defaultPrevented ||
      event.button !== 0 ||
      event.metaKey ||
      event.ctrlKey ||
      event.shiftKey ||
      event.altKey ||
      (rest.target && rest.target !== "_self")
    ) {
      return;
    }
    event.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={handleClick} {...rest} />;
}
