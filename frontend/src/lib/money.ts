// Money and models as people read them. The server counts money in integer micro-dollars
// (1 USD = 1,000,000; docs/protocol.md, "State"); prices come in micro-dollars per million tokens.

const MICROS_PER_USD = 1_000_000;

function grouped(whole: number): string {
  return String(whole).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** `value` (an integer) / 10^decimals as a decimal string with exactly `decimals` places. */
function fixed(value: number, decimals: number): string {
  const scale = 10 ** decimals;
  const whole = Math.floor(value / scale);
  const frac = decimals > 0 ? `.${String(value % scale).padStart(decimals, "0")}` : "";
  return `${grouped(whole)}${frac}`;
}

/**
 * Micro-dollars as dollars: "$0.00", "$0.000045", "$0.0123", "$0.50", "$1.23", "$1,234.57".
 * From $1 up: cents. Below $1: three significant digits (at most six decimals, so a single
 * micro-dollar still shows), trailing zeros trimmed to no fewer than two decimals. Integer
 * arithmetic throughout: no binary-fraction surprises.
 */
export function formatUsd(micro: number): string {
  if (!Number.isFinite(micro)) return "–";
  if (micro < 0) return `-${formatUsd(-micro)}`;
  const m = Math.round(micro);
  if (m === 0) return "$0.00";
  if (m < MICROS_PER_USD) {
    // The first significant digit's place among the six decimals (0 = tenths).
    const place = 6 - String(m).length;
    const decimals = Math.min(6, Math.max(2, place + 3));
    const unit = 10 ** (6 - decimals);
    const rounded = Math.round(m / unit);
    if (rounded * unit < MICROS_PER_USD) {
      let text = fixed(rounded, decimals);
      while (text.endsWith("0") && text.length - text.indexOf(".") - 1 > 2) text = text.slice(0, -1);
      return `$${text}`;
    }
  }
  return `$${fixed(Math.round(m / 10_000), 2)}`;
}

/** A price per million tokens (micro-dollars per Mtok) in dollars: "$3", "$0.15", "$2.50", "$0.075". */
export function formatPricePerMtok(micro: number): string {
  if (!Number.isFinite(micro) || micro < 0) return "–";
  const m = Math.round(micro);
  if (m % MICROS_PER_USD === 0) return `$${grouped(m / MICROS_PER_USD)}`;
  return formatUsd(m);
}

const PROVIDER_LABEL: Record<string, string> = { openai: "OpenAI", anthropic: "Anthropic" };

/** "anthropic" → "Anthropic", "openai" → "OpenAI"; another provider as written, capitalised. */
export function providerLabel(provider: string): string {
  return PROVIDER_LABEL[provider] ?? (provider ? provider.charAt(0).toUpperCase() + provider.slice(1) : "");
}

/** "anthropic:claude-sonnet-4-5" → {provider: "Anthropic", model: "claude-sonnet-4-5"}. */
export function parseModelId(id: string): { provider: string; model: string } {
  const at = id.indexOf(":");
  if (at < 0) return { provider: "", model: id };
  return { provider: providerLabel(id.slice(0, at)), model: id.slice(at + 1) };
}

/** "$3 / $15 per M tokens", or "price unknown". */
export function priceWords(price: { input: number; output: number } | null | undefined): string {
  if (!price) return "price unknown";
  return `${formatPricePerMtok(price.input)} / ${formatPricePerMtok(price.output)} per M tokens`;
}

/** One option of a model picker: "Anthropic · claude-sonnet-4-5 · $3 / $15 per M tokens". */
export function modelOptionLabel(model: { provider: string; model: string; price: { input: number; output: number } | null }): string {
  return `${providerLabel(model.provider)} · ${model.model} · ${priceWords(model.price)}`;
}

/** What a card or the header says for a cost: "$0.0123", or "price unknown". */
export function costWords(micro: number | undefined, priceKnown: boolean | undefined): string {
  if (priceKnown === false) return micro ? `${formatUsd(micro)} + price unknown` : "price unknown";
  return formatUsd(micro ?? 0);
}
