/**
 * How a profile file or a webhook answer lies over the agent config it refines: objects are merged
 * key by key, anything else (arrays such as `tools`, strings, numbers, `null`) replaces what was
 * there. Pure; the result is validated afterwards like any config file.
 */
import { isJsonObject, type JsonObject } from '../util/json.js';

/**
 * Keys replaced as a whole even though their values are objects: `greeting` is either
 * `{text}` or `{instructions}`, and merging one into the other would make it both.
 */
export const REPLACED_WHOLE: readonly string[] = ['greeting'];

/**
 * `overlay` over `base`; neither is modified. `replacedWhole` applies at the top level only (the
 * agent config's own keys); below it every object merges.
 */
export function mergeAgentJson(base: JsonObject, overlay: JsonObject, replacedWhole: readonly string[] = REPLACED_WHOLE): JsonObject {
  const out: JsonObject = { ...base };
  for (const [key, value] of Object.entries(overlay)) {
    const under = out[key];
    out[key] = isJsonObject(value) && isJsonObject(under) && !replacedWhole.includes(key) ? mergeAgentJson(under, value, []) : value;
  }
  return out;
}
