import { useEffect, useState } from 'preact/hooks';

/** Hash routes (#/campaigns/3), so the server needs only `/`. */

export function currentPath() {
  return location.hash.replace(/^#/, '') || '/';
}

export function navigate(path) {
  location.hash = path;
}

export function useRoute() {
  const [path, setPath] = useState(currentPath);
  useEffect(() => {
    const onChange = () => setPath(currentPath());
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return path;
}

/** Matches "/campaigns/:id" against a path; returns the parameters or null. */
export function match(pattern, path) {
  const names = [];
  const re = new RegExp(`^${pattern.replace(/:(\w+)/g, (_, n) => (names.push(n), '([^/]+)'))}/?$`);
  const m = re.exec(path);
  return m ? Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1])])) : null;
}
