//! What a call costs: a price per model, the cost of one call in integer micro-dollars, and the
//! session's dollar budget.
//!
//! Rules:
//!
//! - Money is [`MicroUsd`] (`u64`, one millionth of a US dollar) everywhere; prices are
//!   micro-dollars per million tokens. No float is ever on the cost path: prices and the
//!   budget are parsed from decimal text digit by digit, products are taken in `u128`.
//! - One call is priced as a whole and rounded once, half up, to a whole micro-dollar:
//!   `cost = (uncached·input + cached·cached_input + completion·output + 500_000) / 1_000_000`.
//!   So a call's cost is within half a micro-dollar of the exact figure, and the sum of `n`
//!   calls' costs is within `n / 2` micro-dollars (rounded down) of pricing their token totals
//!   in one go (a property test holds us to that).
//! - `cached_prompt_tokens` are part of `prompt_tokens` (OpenAI's `cached_tokens`, Anthropic's
//!   `cache_read_input_tokens`) and are billed at the cached-input price; the rest of the
//!   prompt at the input price.
//! - An answer served from BotArmy's own answer cache made no provider call: it costs 0.
//! - A model missing from the table costs 0 and says so ([`Cost::price_known`] is false), so
//!   the UI can show "price unknown" instead of a misleading $0.00.
//! - [`StageCosts`] adds up what each agent spent (every attempt counts: a failed or
//!   rejected attempt's tokens were billed too).
//! - The budget check is one pure decision ([`check_budget`]): spent so far plus what the next
//!   call may cost, against the limit.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::protocol::Stage;

/// Money in millionths of a US dollar.
pub type MicroUsd = u64;

/// Micro-dollars in one dollar.
pub const MICROS_PER_USD: u64 = 1_000_000;

/// Tokens in the "per million tokens" of a price.
const TOKENS_PER_PRICE_UNIT: u128 = 1_000_000;

/// Largest price accepted from configuration: $100,000 per million tokens. Far above any real
/// price; it keeps every product comfortably inside `u128` and every call's cost in `u64`.
pub const MAX_PRICE_MICROS_PER_MTOK: u64 = 100_000 * MICROS_PER_USD;

/// Largest accepted `SESSION_BUDGET_USD`: $1,000,000.
pub const MAX_BUDGET_USD: u64 = 1_000_000;

/// A model's list price, in micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    pub input: u64,
    pub output: u64,
    /// Prompt tokens the provider served from its prompt cache.
    pub cached_input: u64,
}

impl Price {
    /// From whole micro-dollars per million tokens (`0.15 $/Mtok` is `150_000`).
    pub const fn new(input: u64, output: u64, cached_input: u64) -> Price {
        Price {
            input,
            output,
            cached_input,
        }
    }
}

/// The tokens one call used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenUsage {
    /// Every prompt token, cached ones included.
    pub prompt_tokens: u64,
    /// The part of `prompt_tokens` read from the provider's prompt cache.
    pub cached_prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl TokenUsage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> TokenUsage {
        TokenUsage {
            prompt_tokens,
            cached_prompt_tokens: 0,
            completion_tokens,
        }
    }

    /// Adds another call's tokens (saturating).
    pub fn add(&mut self, other: TokenUsage) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.cached_prompt_tokens = self
            .cached_prompt_tokens
            .saturating_add(other.cached_prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
    }
}

/// What one call (or a sum of calls) cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    pub micro_usd: MicroUsd,
    /// False when a model without a known price took part: `micro_usd` counts it as 0.
    pub price_known: bool,
}

impl Cost {
    pub const ZERO: Cost = Cost {
        micro_usd: 0,
        price_known: true,
    };

    /// Sum of two costs; unknown if either is.
    pub fn plus(self, other: Cost) -> Cost {
        Cost {
            micro_usd: self.micro_usd.saturating_add(other.micro_usd),
            price_known: self.price_known && other.price_known,
        }
    }
}

/// What each agent (stage) of a session has cost so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageCosts {
    per_stage: [Cost; 5],
}

impl Default for StageCosts {
    fn default() -> Self {
        StageCosts {
            per_stage: [Cost::ZERO; 5],
        }
    }
}

impl StageCosts {
    pub fn add(&mut self, stage: Stage, cost: Cost) {
        let c = &mut self.per_stage[stage.index()];
        *c = c.plus(cost);
    }

    pub fn get(&self, stage: Stage) -> Cost {
        self.per_stage[stage.index()]
    }

    /// The whole session: the sum of the stages (unknown if any stage's is).
    pub fn total(&self) -> Cost {
        self.per_stage.iter().fold(Cost::ZERO, |a, c| a.plus(*c))
    }
}

/// `{"analyst": {"microUsd": …, "priceKnown": …}, …, "total": {…}}` for the UI.
impl Serialize for StageCosts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(Stage::ALL.len() + 1))?;
        for st in Stage::ALL {
            m.serialize_entry(st.name(), &self.get(st))?;
        }
        m.serialize_entry("total", &self.total())?;
        m.end()
    }
}

/// The exact cost of `usage` at `price`, in micro-dollars times a million (not rounded).
fn exact_micro_millionths(price: Price, usage: TokenUsage) -> u128 {
    let cached = usage.cached_prompt_tokens.min(usage.prompt_tokens);
    let uncached = usage.prompt_tokens - cached;
    uncached as u128 * price.input as u128
        + cached as u128 * price.cached_input as u128
        + usage.completion_tokens as u128 * price.output as u128
}

/// The cost of one provider call, rounded half up to a whole micro-dollar (see the header).
/// `cached_prompt_tokens` beyond `prompt_tokens` are ignored.
pub fn call_cost(price: Price, usage: TokenUsage) -> MicroUsd {
    let exact = exact_micro_millionths(price, usage);
    let rounded = (exact + TOKENS_PER_PRICE_UNIT / 2) / TOKENS_PER_PRICE_UNIT;
    u64::try_from(rounded).unwrap_or(u64::MAX)
}

/// Where a price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PriceSource {
    /// [`DEFAULT_PRICES`], shipped with BotArmy.
    Default,
    /// `MODEL_PRICES`.
    Config,
}

/// List prices in USD per million tokens (input, output, cached input), standard tier, short
/// context, as the providers publish them (developers.openai.com/api/docs/pricing and the model
/// pages; platform.claude.com/docs models overview and model pages), read 2026-12-01 from
/// stored copies of those pages and of price notes quoting them. Older rows are kept for
/// deployments still on those models.
/// Anthropic's cached input is its "cache hits" price; cache writes are billed at the input
/// price here (BotArmy does not ask for prompt caching, so it has none).
/// Dated snapshots (`gpt-4o-mini-2024-07-18`, `claude-sonnet-4-5-20250929`) and `-latest`
/// aliases find their family's row (see [`PriceTable::lookup`]).
pub const DEFAULT_PRICES: &[(&str, Price)] = &[
    // OpenAI, current (2026-09): GPT-6 Sol and Luna, GPT-6.1 Sol.
    ("gpt-6-sol", Price::new(2_000_000, 10_000_000, 200_000)),
    ("gpt-6.1-sol", Price::new(2_000_000, 10_000_000, 100_000)),
    ("gpt-6-luna", Price::new(100_000, 500_000, 10_000)),
    // Anthropic, current: Sonnet 5.5 and 5, Opus 5.5 and 5, Haiku 5.5, Fable 5.1.
    (
        "claude-sonnet-5-5",
        Price::new(2_000_000, 10_000_000, 200_000),
    ),
    (
        "claude-sonnet-5",
        Price::new(2_000_000, 10_000_000, 200_000),
    ),
    (
        "claude-opus-5-5",
        Price::new(4_000_000, 20_000_000, 200_000),
    ),
    ("claude-opus-5", Price::new(5_000_000, 25_000_000, 500_000)),
    ("claude-haiku-5-5", Price::new(100_000, 500_000, 10_000)),
    (
        "claude-fable-5-1",
        Price::new(10_000_000, 50_000_000, 1_000_000),
    ),
    // OpenAI, earlier
    ("gpt-4o-mini", Price::new(150_000, 600_000, 75_000)),
    ("gpt-4o", Price::new(2_500_000, 10_000_000, 1_250_000)),
    ("gpt-4.1", Price::new(2_000_000, 8_000_000, 500_000)),
    ("gpt-4.1-mini", Price::new(400_000, 1_600_000, 100_000)),
    ("gpt-4.1-nano", Price::new(100_000, 400_000, 25_000)),
    ("gpt-5", Price::new(1_250_000, 10_000_000, 125_000)),
    ("gpt-5-mini", Price::new(250_000, 2_000_000, 25_000)),
    ("gpt-5-nano", Price::new(50_000, 400_000, 5_000)),
    ("o3", Price::new(2_000_000, 8_000_000, 500_000)),
    ("o3-mini", Price::new(1_100_000, 4_400_000, 550_000)),
    ("o4-mini", Price::new(1_100_000, 4_400_000, 275_000)),
    // Anthropic
    (
        "claude-opus-4-5",
        Price::new(5_000_000, 25_000_000, 500_000),
    ),
    (
        "claude-opus-4-1",
        Price::new(15_000_000, 75_000_000, 1_500_000),
    ),
    (
        "claude-opus-4-0",
        Price::new(15_000_000, 75_000_000, 1_500_000),
    ),
    (
        "claude-sonnet-4-5",
        Price::new(3_000_000, 15_000_000, 300_000),
    ),
    (
        "claude-sonnet-4-0",
        Price::new(3_000_000, 15_000_000, 300_000),
    ),
    (
        "claude-3-7-sonnet",
        Price::new(3_000_000, 15_000_000, 300_000),
    ),
    (
        "claude-haiku-4-5",
        Price::new(1_000_000, 5_000_000, 100_000),
    ),
    ("claude-3-5-haiku", Price::new(800_000, 4_000_000, 80_000)),
];

/// Model name → price: the shipped defaults, overridden and extended by `MODEL_PRICES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    prices: BTreeMap<String, (Price, PriceSource)>,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::defaults()
    }
}

/// A model's price, or the fact that there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceLookup {
    /// `None`: unknown, every call costs 0 and is flagged.
    pub price: Option<Price>,
    pub source: Option<PriceSource>,
}

impl PriceTable {
    pub fn defaults() -> PriceTable {
        let mut prices = BTreeMap::new();
        for (model, price) in DEFAULT_PRICES {
            prices.insert(model.to_string(), (*price, PriceSource::Default));
        }
        // Anthropic's aliases for the 4.0 models.
        for (alias, row) in [
            ("claude-opus-4", "claude-opus-4-0"),
            ("claude-sonnet-4", "claude-sonnet-4-0"),
        ] {
            let p = prices[row];
            prices.insert(alias.to_string(), p);
        }
        PriceTable { prices }
    }

    /// The defaults with `MODEL_PRICES` applied: `model=input/output[/cached]` entries in USD
    /// per million tokens, comma-separated (`my-model=0.5/1.5/0.05,gpt-4o=2/8`). Without a
    /// cached price, cached prompt tokens cost the input price.
    pub fn with_overrides(spec: &str) -> Result<PriceTable, String> {
        let mut table = PriceTable::defaults();
        for (model, price) in parse_model_prices(spec)? {
            table.prices.insert(model, (price, PriceSource::Config));
        }
        Ok(table)
    }

    /// The price of `model`: an exact match, else the model without a trailing date
    /// (`-2024-07-18`, `-20250929`) or `-latest`.
    pub fn lookup(&self, model: &str) -> PriceLookup {
        let found = self
            .prices
            .get(model)
            .or_else(|| self.prices.get(strip_snapshot_suffix(model)?));
        PriceLookup {
            price: found.map(|(p, _)| *p),
            source: found.map(|(_, s)| *s),
        }
    }

    /// What one call to `model` cost. `from_answer_cache`: BotArmy answered from its own cache
    /// without calling the provider, so it cost nothing (and the price does not matter).
    pub fn cost(&self, model: &str, usage: TokenUsage, from_answer_cache: bool) -> Cost {
        if from_answer_cache {
            return Cost::ZERO;
        }
        match self.lookup(model).price {
            Some(p) => Cost {
                micro_usd: call_cost(p, usage),
                price_known: true,
            },
            None => Cost {
                micro_usd: 0,
                price_known: false,
            },
        }
    }

    /// Every model with a price, in name order (for the UI and docs).
    pub fn models(&self) -> impl Iterator<Item = (&str, Price, PriceSource)> {
        self.prices.iter().map(|(m, (p, s))| (m.as_str(), *p, *s))
    }
}

/// `name-2024-07-18`, `name-20250929` or `name-latest` → `name`.
fn strip_snapshot_suffix(model: &str) -> Option<&str> {
    if let Some(base) = model.strip_suffix("-latest") {
        return Some(base);
    }
    let (base, tail) = model.rsplit_once('-')?;
    if tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_digit()) {
        return Some(base);
    }
    // -YYYY-MM-DD: three dash-separated numeric parts.
    let mut parts = model.rsplitn(4, '-');
    let (d, m, y, base) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    (digits(y, 4) && digits(m, 2) && digits(d, 2)).then_some(base)
}

/// Parses `MODEL_PRICES` (see [`PriceTable::with_overrides`]). Blank means none.
pub fn parse_model_prices(spec: &str) -> Result<Vec<(String, Price)>, String> {
    let mut out: Vec<(String, Price)> = Vec::new();
    if spec.trim().is_empty() {
        return Ok(out);
    }
    for entry in spec.split(',') {
        let entry = entry.trim();
        let bad = |why: &str| format!("MODEL_PRICES entry {entry:?}: {why}");
        if entry.is_empty() {
            return Err("MODEL_PRICES has an empty entry (two commas in a row?)".into());
        }
        let (model, prices) = entry
            .split_once('=')
            .ok_or_else(|| bad("expected model=input/output[/cached] in USD per million tokens"))?;
        let model = model.trim();
        if model.is_empty() || model.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the model name is empty or has spaces"));
        }
        if out.iter().any(|(m, _)| m == model) {
            return Err(bad("the model is priced twice"));
        }
        let parts: Vec<&str> = prices.split('/').map(str::trim).collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(bad("expected two or three prices: input/output[/cached]"));
        }
        let mut nums = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            nums[i] = parse_usd_micros(p, MAX_PRICE_MICROS_PER_MTOK / MICROS_PER_USD)
                .map_err(|why| bad(&why))?;
        }
        let cached = if parts.len() == 3 { nums[2] } else { nums[0] };
        out.push((model.to_string(), Price::new(nums[0], nums[1], cached)));
    }
    Ok(out)
}

/// A dollar amount as decimal text (`2`, `0.15`, `.5`, `1.000001`) in micro-dollars, at most
/// `max_usd` dollars. At most six decimals (a micro-dollar); no sign, exponent or `$`.
pub fn parse_usd_micros(text: &str, max_usd: u64) -> Result<MicroUsd, String> {
    let t = text.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) {
        return Err(format!("{t:?} is not an amount in dollars such as 0.15"));
    }
    if frac.len() > 6 {
        return Err(format!(
            "{t:?} has more than six decimals (the smallest unit is a millionth of a dollar)"
        ));
    }
    let too_big = || format!("{t:?} is more than {max_usd} dollars");
    let whole_trimmed = whole.trim_start_matches('0');
    if whole_trimmed.len() > 12 {
        return Err(too_big());
    }
    let dollars: u64 = if whole_trimmed.is_empty() {
        0
    } else {
        whole_trimmed.parse().map_err(|_| too_big())?
    };
    let micros: u64 = format!("{frac:0<6}").parse().unwrap_or(0);
    let total = dollars
        .checked_mul(MICROS_PER_USD)
        .and_then(|d| d.checked_add(micros))
        .ok_or_else(too_big)?;
    if total > max_usd.saturating_mul(MICROS_PER_USD) {
        return Err(too_big());
    }
    Ok(total)
}

/// `SESSION_BUDGET_USD`: unset or blank means no dollar limit; `0` is refused (it would
/// forbid every call, which is what the demo provider is for).
pub fn parse_budget_usd(value: Option<&str>) -> Result<Option<MicroUsd>, String> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match parse_usd_micros(v, MAX_BUDGET_USD) {
        Ok(0) => Err("SESSION_BUDGET_USD must be more than 0 (leave it unset for no limit)".into()),
        Ok(n) => Ok(Some(n)),
        Err(why) => Err(format!("SESSION_BUDGET_USD: {why}")),
    }
}

/// The budget decision for the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BudgetCheck {
    /// No dollar budget is set.
    Unlimited,
    /// The call fits; `remaining` is what is left if it costs as much as estimated.
    Within { remaining: MicroUsd },
    /// The call could take the session past its budget by `over_by`.
    WouldExceed { over_by: MicroUsd },
}

impl BudgetCheck {
    pub fn allowed(self) -> bool {
        !matches!(self, BudgetCheck::WouldExceed { .. })
    }
}

/// Whether a call estimated to cost `next` may start when `spent` is already used of `limit`.
/// Spending exactly the budget is allowed; a micro-dollar more is not.
pub fn check_budget(limit: Option<MicroUsd>, spent: MicroUsd, next: MicroUsd) -> BudgetCheck {
    let Some(limit) = limit else {
        return BudgetCheck::Unlimited;
    };
    let after = spent.saturating_add(next);
    if after <= limit {
        BudgetCheck::Within {
            remaining: limit - after,
        }
    } else {
        BudgetCheck::WouldExceed {
            over_by: after - limit,
        }
    }
}

/// The most the next call can cost: its prompt (all uncached) and `max_completion_tokens`.
/// Unknown prices give 0 (the budget cannot stop what it cannot price).
pub fn worst_case_cost(
    table: &PriceTable,
    model: &str,
    prompt_tokens: u64,
    max_completion_tokens: u64,
) -> Cost {
    table.cost(
        model,
        TokenUsage::new(prompt_tokens, max_completion_tokens),
        false,
    )
}

/// Micro-dollars for people: `$0.003225`, `$1.50`, `$12`. Exact: no float, no rounding;
/// trailing zeros after the second decimal are dropped.
pub fn format_usd(micros: MicroUsd) -> String {
    let dollars = micros / MICROS_PER_USD;
    let frac = micros % MICROS_PER_USD;
    if frac == 0 {
        return format!("${dollars}");
    }
    let mut f = format!("{frac:06}");
    while f.len() > 2 && f.ends_with('0') {
        f.pop();
    }
    format!("${dollars}.{f}")
}

/// A price for display, per million tokens.
impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in / {} out / {} cached per million tokens",
            format_usd(self.input),
            format_usd(self.output),
            format_usd(self.cached_input)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINI: Price = Price::new(150_000, 600_000, 75_000);

    #[test]
    fn a_call_is_priced_whole_and_rounded_half_up_once() {
        // 1500 × 0.15 + 700 × 0.60 = 225 + 420 µ$.
        assert_eq!(call_cost(MINI, TokenUsage::new(1500, 700)), 645);
        // 1 prompt token at $0.15/M is 0.15 µ$: rounds to 0; 4 tokens = 0.6 µ$: rounds to 1.
        assert_eq!(call_cost(MINI, TokenUsage::new(1, 0)), 0);
        assert_eq!(call_cost(MINI, TokenUsage::new(4, 0)), 1);
        // Exactly half a micro-dollar rounds up: 1 token at $0.50/M.
        assert_eq!(
            call_cost(Price::new(500_000, 0, 0), TokenUsage::new(1, 0)),
            1
        );
        assert_eq!(
            call_cost(Price::new(499_999, 0, 0), TokenUsage::new(1, 0)),
            0
        );
        // The parts are summed before rounding: 3 × 0.15 + 1 × 0.6 = 1.05 → 1, where
        // rounding each part first would give 0 + 1.
        assert_eq!(call_cost(MINI, TokenUsage::new(3, 1)), 1);
    }

    #[test]
    fn cached_prompt_tokens_are_billed_at_the_cached_price() {
        let u = TokenUsage {
            prompt_tokens: 10_000,
            cached_prompt_tokens: 8_000,
            completion_tokens: 0,
        };
        // 2000 × 0.15 + 8000 × 0.075 = 300 + 600.
        assert_eq!(call_cost(MINI, u), 900);
        // More cached than prompt tokens (a confused server) is capped at the prompt.
        let odd = TokenUsage {
            prompt_tokens: 100,
            cached_prompt_tokens: 1_000_000,
            completion_tokens: 0,
        };
        assert_eq!(call_cost(Price::new(1_000_000, 0, 0), odd), 0);
        assert_eq!(call_cost(Price::new(0, 0, 1_000_000), odd), 100);
    }

    #[test]
    fn the_demo_sized_run_costs_cents() {
        let table = PriceTable::defaults();
        let run = |model: &str| {
            (0..5).fold(Cost::ZERO, |acc, _| {
                acc.plus(table.cost(model, TokenUsage::new(1500, 700), false))
            })
        };
        assert_eq!(run("gpt-4o-mini").micro_usd, 3_225);
        assert_eq!(format_usd(run("gpt-4o-mini").micro_usd), "$0.003225");
        assert_eq!(run("claude-sonnet-4-5").micro_usd, 75_000);
        assert_eq!(format_usd(run("claude-sonnet-4-5").micro_usd), "$0.075");
    }

    #[test]
    fn answers_from_the_answer_cache_cost_nothing() {
        let table = PriceTable::defaults();
        let u = TokenUsage::new(1_000_000, 1_000_000);
        assert_eq!(table.cost("gpt-4o", u, true), Cost::ZERO);
        assert_eq!(table.cost("never-heard-of-it", u, true), Cost::ZERO);
        assert_eq!(table.cost("gpt-4o", u, false).micro_usd, 12_500_000);
    }

    #[test]
    fn unknown_models_cost_nothing_and_say_so() {
        let table = PriceTable::defaults();
        let c = table.cost("llama3.2", TokenUsage::new(5000, 5000), false);
        assert_eq!(c.micro_usd, 0);
        assert!(!c.price_known);
        assert_eq!(table.lookup("llama3.2").price, None);
        // Unknown is contagious when summing.
        assert!(!Cost::ZERO.plus(c).price_known);
        assert!(Cost::ZERO.plus(Cost::ZERO).price_known);
    }

    #[test]
    fn dated_snapshots_and_aliases_find_their_family() {
        let t = PriceTable::defaults();
        assert_eq!(t.lookup("gpt-4o-mini-2024-07-18").price, Some(MINI));
        assert_eq!(
            t.lookup("claude-sonnet-4-5-20250929").price,
            t.lookup("claude-sonnet-4-5").price
        );
        assert_eq!(
            t.lookup("claude-3-5-haiku-latest").price,
            t.lookup("claude-3-5-haiku").price
        );
        assert_eq!(
            t.lookup("claude-sonnet-4-20250514").price,
            t.lookup("claude-sonnet-4-0").price
        );
        // A longer family name is not a snapshot of a shorter one.
        assert_eq!(t.lookup("gpt-4o-audio-preview").price, None);
        assert_eq!(t.lookup("gpt-4o-2024").price, None);
        assert_eq!(t.lookup("").price, None);
        assert_eq!(t.lookup("-latest").price, None);
    }

    #[test]
    fn every_default_price_is_sane() {
        for (model, p) in DEFAULT_PRICES {
            assert!(p.input > 0 && p.output >= p.input, "{model}");
            assert!(p.cached_input <= p.input, "{model}");
            assert_eq!(model.trim(), *model);
        }
        let names: std::collections::BTreeSet<_> = DEFAULT_PRICES.iter().map(|(m, _)| m).collect();
        assert_eq!(names.len(), DEFAULT_PRICES.len(), "a model is listed twice");
    }

    #[test]
    fn model_prices_override_and_extend_the_defaults() {
        let t = PriceTable::with_overrides(" my-model=0.5/1.5/0.05 , gpt-4o-mini=1/2").unwrap();
        let mine = t.lookup("my-model");
        assert_eq!(mine.price, Some(Price::new(500_000, 1_500_000, 50_000)));
        assert_eq!(mine.source, Some(PriceSource::Config));
        // Without a cached price, cached tokens cost the input price.
        assert_eq!(
            t.lookup("gpt-4o-mini").price,
            Some(Price::new(1_000_000, 2_000_000, 1_000_000))
        );
        assert_eq!(t.lookup("gpt-4o").source, Some(PriceSource::Default));
        // Free local models can be priced at 0, which makes them known.
        let t = PriceTable::with_overrides("llama3.2:3b=0/0").unwrap();
        assert!(
            t.cost("llama3.2:3b", TokenUsage::new(9, 9), false)
                .price_known
        );
        assert_eq!(
            PriceTable::with_overrides("  ").unwrap(),
            PriceTable::defaults()
        );
    }

    #[test]
    fn bad_model_prices_are_named_clearly() {
        for (spec, needle) in [
            ("gpt-4o", "expected model=input/output"),
            ("=1/2", "model name is empty"),
            ("my model=1/2", "spaces"),
            ("m=1", "two or three prices"),
            ("m=1/2/3/4", "two or three prices"),
            ("m=1/x", "not an amount"),
            ("m=-1/2", "not an amount"),
            ("m=1e3/2", "not an amount"),
            ("m=$1/2", "not an amount"),
            ("m=0.0000001/2", "six decimals"),
            ("m=100001/2", "more than 100000 dollars"),
            ("m=1/2,,n=1/2", "empty entry"),
            ("m=1/2,m=3/4", "priced twice"),
        ] {
            let e = PriceTable::with_overrides(spec).unwrap_err();
            assert!(e.contains(needle), "{spec}: {e}");
            assert!(e.contains("MODEL_PRICES"), "{spec}: {e}");
        }
    }

    #[test]
    fn dollar_amounts_parse_exactly() {
        let p = |s| parse_usd_micros(s, 1000);
        assert_eq!(p("2"), Ok(2_000_000));
        assert_eq!(p("0.15"), Ok(150_000));
        assert_eq!(p(".5"), Ok(500_000));
        assert_eq!(p("5."), Ok(5_000_000));
        assert_eq!(p("1.000001"), Ok(1_000_001));
        assert_eq!(p("0001000"), Ok(1_000_000_000));
        assert!(p("1000.000001").is_err());
        assert!(p("99999999999999999999").is_err());
        for bad in ["", ".", "1.2.3", "+1", " 1 2", "0x10", "١"] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_session_budget_is_optional_positive_and_in_micro_dollars() {
        assert_eq!(parse_budget_usd(None), Ok(None));
        assert_eq!(parse_budget_usd(Some("  ")), Ok(None));
        assert_eq!(parse_budget_usd(Some("0.50")), Ok(Some(500_000)));
        assert_eq!(parse_budget_usd(Some("20")), Ok(Some(20_000_000)));
        for bad in ["0", "0.000", "-1", "ten", "1000001"] {
            let e = parse_budget_usd(Some(bad)).unwrap_err();
            assert!(e.contains("SESSION_BUDGET_USD"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_budget_allows_spending_exactly_the_limit_and_not_a_micro_dollar_more() {
        assert_eq!(
            check_budget(None, u64::MAX, u64::MAX),
            BudgetCheck::Unlimited
        );
        assert!(BudgetCheck::Unlimited.allowed());
        assert_eq!(
            check_budget(Some(1000), 600, 400),
            BudgetCheck::Within { remaining: 0 }
        );
        assert_eq!(
            check_budget(Some(1000), 600, 401),
            BudgetCheck::WouldExceed { over_by: 1 }
        );
        assert!(!check_budget(Some(1000), 600, 401).allowed());
        // Already over (a call cost more than estimated): even a free call is refused.
        assert_eq!(
            check_budget(Some(1000), 1200, 0),
            BudgetCheck::WouldExceed { over_by: 200 }
        );
        // No overflow at the edges.
        assert_eq!(
            check_budget(Some(u64::MAX), u64::MAX, u64::MAX),
            BudgetCheck::Within { remaining: 0 }
        );
    }

    #[test]
    fn the_worst_case_of_a_call_assumes_every_allowed_completion_token() {
        let t = PriceTable::defaults();
        let c = worst_case_cost(&t, "gpt-4o-mini", 1500, 4096);
        assert_eq!(c.micro_usd, 225 + 2458); // 4096 × 0.6 = 2457.6 → 2458 with the rest
        assert!(check_budget(Some(2_000), 0, c.micro_usd) != BudgetCheck::Unlimited);
        assert!(!worst_case_cost(&t, "mystery", 1, 1).price_known);
    }

    #[test]
    fn each_agent_keeps_its_own_cost_and_the_total_adds_them_up() {
        let table = PriceTable::defaults();
        let mut costs = StageCosts::default();
        assert_eq!(costs.total(), Cost::ZERO);
        let call = TokenUsage::new(1500, 700);
        costs.add(Stage::Analyst, table.cost("gpt-4o-mini", call, false));
        costs.add(
            Stage::Developer,
            table.cost("claude-sonnet-4-5", call, false),
        );
        // A retry of the developer stage is billed too; a cached answer is not.
        costs.add(
            Stage::Developer,
            table.cost("claude-sonnet-4-5", call, false),
        );
        costs.add(Stage::Tester, table.cost("gpt-4o-mini", call, true));
        assert_eq!(costs.get(Stage::Analyst).micro_usd, 645);
        assert_eq!(costs.get(Stage::Developer).micro_usd, 30_000);
        assert_eq!(costs.get(Stage::Tester), Cost::ZERO);
        assert_eq!(costs.total().micro_usd, 30_645);
        assert!(costs.total().price_known);
        costs.add(Stage::Deployer, table.cost("local-llm", call, false));
        assert!(!costs.total().price_known);
        assert!(costs.get(Stage::Analyst).price_known);
        let json = serde_json::to_value(costs).unwrap();
        assert_eq!(
            json["developer"],
            serde_json::json!({"microUsd": 30_000, "priceKnown": true})
        );
        assert_eq!(json["total"]["microUsd"], 30_645);
        assert_eq!(json["deployer"]["priceKnown"], false);
    }

    #[test]
    fn dollars_are_shown_exactly() {
        assert_eq!(format_usd(0), "$0");
        assert_eq!(format_usd(1), "$0.000001");
        assert_eq!(format_usd(1_500_000), "$1.50");
        assert_eq!(format_usd(3_225), "$0.003225");
        assert_eq!(format_usd(12_000_000), "$12");
        assert_eq!(
            MINI.to_string(),
            "$0.15 in / $0.60 out / $0.075 cached per million tokens"
        );
    }

    #[test]
    fn costs_serialise_for_the_ui() {
        let c = Cost {
            micro_usd: 42,
            price_known: false,
        };
        assert_eq!(
            serde_json::to_value(c).unwrap(),
            serde_json::json!({"microUsd": 42, "priceKnown": false})
        );
        assert_eq!(
            serde_json::to_value(BudgetCheck::WouldExceed { over_by: 3 }).unwrap(),
            serde_json::json!({"type": "would_exceed", "over_by": 3})
        );
    }

    fn usage() -> impl Strategy<Value = TokenUsage> {
        (0u64..2_000_000, 0u64..2_000_000, 0u64..200_000).prop_map(|(p, c, o)| TokenUsage {
            prompt_tokens: p,
            cached_prompt_tokens: c.min(p),
            completion_tokens: o,
        })
    }

    fn price() -> impl Strategy<Value = Price> {
        (0u64..200_000_000, 0u64..200_000_000, 0u64..200_000_000)
            .prop_map(|(i, o, c)| Price::new(i, o, c))
    }

    proptest! {
        #[test]
        fn summing_calls_drifts_from_pricing_the_totals_by_at_most_half_a_micro_dollar_per_call(
            p in price(),
            calls in proptest::collection::vec(usage(), 1..40),
        ) {
            let summed: u64 = calls.iter().map(|u| call_cost(p, *u)).sum();
            let mut total = TokenUsage::default();
            for u in &calls {
                total.add(*u);
            }
            let at_once = call_cost(p, total);
            let drift = summed.abs_diff(at_once);
            prop_assert!(drift <= calls.len() as u64 / 2, "drift {} over {} calls", drift, calls.len());
        }

        #[test]
        fn a_call_is_within_half_a_micro_dollar_of_exact(p in price(), u in usage()) {
            let exact = exact_micro_millionths(p, u);
            let cost = call_cost(p, u) as u128 * TOKENS_PER_PRICE_UNIT;
            prop_assert!(cost.abs_diff(exact) * 2 <= TOKENS_PER_PRICE_UNIT);
        }

        #[test]
        fn cost_never_decreases_with_more_tokens(p in price(), u in usage(), more in 0u64..10_000) {
            let mut bigger = u;
            bigger.completion_tokens += more;
            prop_assert!(call_cost(p, bigger) >= call_cost(p, u));
        }

        #[test]
        fn dollar_text_round_trips_through_format(micros in 0u64..1_000_000_000_000) {
            let text = format_usd(micros);
            prop_assert_eq!(parse_usd_micros(text.trim_start_matches('$'), MAX_BUDGET_USD), Ok(micros));
        }

        #[test]
        fn parsing_any_text_never_panics(s in "\\PC{0,30}") {
            let _ = parse_usd_micros(&s, MAX_BUDGET_USD);
            let _ = parse_model_prices(&s);
            let _ = parse_budget_usd(Some(&s));
        }
    }
}
