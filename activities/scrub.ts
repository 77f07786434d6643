/** Credential scrubbing for any text that leaves an activity (failures, alerts, tool output). */

/** Removes credentials from any text a driver produced. */
export function scrub(text: string, secrets: string[] = []): string {
  let out = text
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:\s/@]+:)[^@\s]+@/gi, '$1***@')
    .replace(/([?&]password=)[^&\s]+/gi, '$1***');
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}
