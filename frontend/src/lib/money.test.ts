import { describe, expect, it } from "vitest";
import { costWords, formatPricePerMtok, formatUsd, modelOptionLabel, parseModelId, priceWords, providerLabel } from "./money";

describe("formatUsd: micro-dollars as dollars", () => {
  it.each([
    [0, "$0.00"],
    [1, "$0.000001"],
    [45, "$0.000045"],
    [130, "$0.00013"],
    [126, "$0.000126"],
    [1_234, "$0.00123"],
    [10_000, "$0.01"],
    [12_300, "$0.0123"],
    [12_345, "$0.0123"],
    [12_355, "$0.0124"],
    [123_456, "$0.123"],
    [400, "$0.0004"],
    [500_000, "$0.50"],
    [999_999, "$1.00"],
    [1_000_000, "$1.00"],
    [1_230_000, "$1.23"],
    [1_234_999, "$1.23"],
    [1_235_000, "$1.24"],
    [12_000_000, "$12.00"],
    [1_234_567_890, "$1,234.57"],
    [-45, "-$0.000045"],
  ])("%i µ$ → %s", (micro, words) => {
    expect(formatUsd(micro)).toBe(words);
  });

  it("never shows a misleading number for what is not a number", () => {
    expect(formatUsd(Number.NaN)).toBe("–");
    expect(formatUsd(Number.POSITIVE_INFINITY)).toBe("–");
  });
});

describe("prices and models", () => {
  it("a price per million tokens: whole dollars without cents, else as money", () => {
    expect(formatPricePerMtok(3_000_000)).toBe("$3");
    expect(formatPricePerMtok(15_000_000)).toBe("$15");
    expect(formatPricePerMtok(150_000)).toBe("$0.15");
    expect(formatPricePerMtok(2_500_000)).toBe("$2.50");
    expect(formatPricePerMtok(75_000)).toBe("$0.075");
    expect(priceWords({ input: 3_000_000, output: 15_000_000 })).toBe("$3 / $15 per M tokens");
    expect(priceWords(null)).toBe("price unknown");
  });

  it("names providers and models as people read them", () => {
    expect(providerLabel("openai")).toBe("OpenAI");
    expect(providerLabel("anthropic")).toBe("Anthropic");
    expect(providerLabel("mistral")).toBe("Mistral");
    expect(parseModelId("anthropic:claude-sonnet-4-5")).toEqual({ provider: "Anthropic", model: "claude-sonnet-4-5" });
    expect(parseModelId("openai:ft:gpt-4o:acme")).toEqual({ provider: "OpenAI", model: "ft:gpt-4o:acme" });
    expect(parseModelId("plain")).toEqual({ provider: "", model: "plain" });
    expect(modelOptionLabel({ provider: "anthropic", model: "claude-sonnet-4-5", price: { input: 3_000_000, output: 15_000_000 } })).toBe(
      "Anthropic · claude-sonnet-4-5 · $3 / $15 per M tokens",
    );
    expect(modelOptionLabel({ provider: "openai", model: "house", price: null })).toBe("OpenAI · house · price unknown");
  });

  it("a cost with an unknown price says so instead of a misleading $0.00", () => {
    expect(costWords(12_300, true)).toBe("$0.0123");
    expect(costWords(12_300, undefined)).toBe("$0.0123");
    expect(costWords(0, false)).toBe("price unknown");
    expect(costWords(12_300, false)).toBe("$0.0123 + price unknown");
    expect(costWords(undefined, undefined)).toBe("$0.00");
  });
});
