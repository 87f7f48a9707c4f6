package agent

import (
	"strings"
	"unicode"
)

// The critic's verdicts, as Review.Verdict reports them.
const (
	verdictValid   = "valid"
	verdictInvalid = "invalid"
	verdictSkipped = "skipped"
)

// Characters that may wrap the verdict token (Markdown emphasis, code
// spans, headings and quotes, brackets, quotation marks) or end it
// (punctuation glued to it, as in "VALID." or "**INVALID:**").
const (
	openMarks  = "*_`#>[({\"' \t"
	closeMarks = "*_`])}\"'.,:;!"
)

// parseVerdict reads the critic's reply. The verdict is the first word of
// the reply, VALID or INVALID in any case, optionally wrapped in Markdown
// or brackets ("**INVALID**", "[VALID]") and optionally labelled
// ("Verdict: INVALID"); "NOT VALID" reads as INVALID. Only the whole word counts: "VALIDATED" and
// "INVALIDATE" are not verdicts, and neither is either word later in the
// reply, so "VALID. No invalid numbers." is valid. The critique is the
// rest of the reply, after the token's closing marks and separators.
//
// A reply that does not start with a verdict counts as valid, with the
// whole reply as its critique: a chatty critic neither loops nor triggers
// a regeneration it did not clearly ask for, and the caller still sees
// what it said. An empty reply is valid with no critique.
func parseVerdict(reply string) (verdict, critique string) {
	text := strings.TrimSpace(reply)
	word, rest := leadingWord(strings.TrimLeft(text, openMarks))
	if strings.EqualFold(word, "verdict") {
		word, rest = leadingWord(strings.TrimLeftFunc(rest, func(r rune) bool {
			return unicode.IsSpace(r) || strings.ContainsRune(openMarks+closeMarks, r)
		}))
	}
	if strings.EqualFold(word, "not") {
		// "NOT VALID: ..." is a verdict of invalid, not a chatty opener.
		if next, after := leadingWord(strings.TrimLeft(rest, " \t")); strings.EqualFold(next, "valid") {
			return verdictInvalid, critiqueAfter(after)
		}
	}
	switch {
	case strings.EqualFold(word, "valid"):
		verdict = verdictValid
	case strings.EqualFold(word, "invalid"):
		verdict = verdictInvalid
	default:
		return verdictValid, text
	}
	return verdict, critiqueAfter(rest)
}

// critiqueAfter returns the critique that follows the verdict token: the
// marks glued to the token go, then a spaced dash ("VALID — fine"), but a
// dash that starts a line or a number ("INVALID\n- wrong", "-5") stays.
func critiqueAfter(rest string) string {
	rest = strings.TrimLeft(rest, closeMarks)
	rest = strings.TrimLeft(rest, " \t")
	for _, dash := range []string{"-", "–", "—"} {
		if after, ok := strings.CutPrefix(rest, dash+" "); ok {
			rest = after
			break
		}
	}
	return strings.TrimSpace(rest)
}

// leadingWord splits s after its leading run of letters and digits.
func leadingWord(s string) (word, rest string) {
	end := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if end < 0 {
		return s, ""
	}
	return s[:end], s[end:]
}
