package agent

import "testing"

func TestParseVerdictShouldReadOnlyTheTokenAtTheStart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		reply    string
		verdict  string
		critique string
	}{
		{"bare valid", "VALID", "valid", ""},
		{"bare invalid", "INVALID", "invalid", ""},
		{"not valid reads as invalid", "Not valid: North has 160, not 200.", "invalid", "North has 160, not 200."},
		{"NOT VALID in bold", "**NOT VALID** - wrong total", "invalid", "wrong total"},
		{"not a verdict after not", "Not sure, but it looks fine.", "valid", "Not sure, but it looks fine."},
		{"valid then text naming invalid numbers (issue 8)", "VALID. No invalid numbers.", "valid", "No invalid numbers."},
		{"valid then INVALID in the text", "VALID — nothing INVALID here", "valid", "nothing INVALID here"},
		{"invalid then critique after a colon", "INVALID: the result shows North with 160, not South.", "invalid", "the result shows North with 160, not South."},
		{"invalid then critique mentioning valid", "INVALID - 200 is not a valid total; the result says 160", "invalid", "200 is not a valid total; the result says 160"},
		{"brackets", "[VALID]", "valid", ""},
		{"brackets then critique", "[INVALID] South is not the leader.", "invalid", "South is not the leader."},
		{"markdown bold", "**VALID**", "valid", ""},
		{"markdown bold then colon", "**INVALID**: the mean is 53.3, not 60.", "invalid", "the mean is 53.3, not 60."},
		{"bold with the colon inside", "**Invalid:** wrong region", "invalid", "wrong region"},
		{"italic", "_valid_", "valid", ""},
		{"heading", "## INVALID\nThe total is wrong.", "invalid", "The total is wrong."},
		{"code span", "`VALID`", "valid", ""},
		{"quoted", `"INVALID": wrong`, "invalid", "wrong"},
		{"lowercase", "invalid: wrong total", "invalid", "wrong total"},
		{"title case with colon", "Valid: the numbers match.", "valid", "the numbers match."},
		{"leading whitespace and newlines", "\n\t  INVALID\n\nThe answer cites 200.", "invalid", "The answer cites 200."},
		{"en dash", "INVALID – wrong total", "invalid", "wrong total"},
		{"a negative number keeps its sign", "INVALID: -5 is not in the result", "invalid", "-5 is not in the result"},
		{"emphasis in the critique stays", "INVALID: *South* is not the leader", "invalid", "*South* is not the leader"},
		{"critique as a list keeps its first dash", "INVALID\n- wrong total\n- wrong region", "invalid", "- wrong total\n- wrong region"},
		{"labelled", "Verdict: INVALID. North has 160.", "invalid", "North has 160."},
		{"labelled in bold", "**Verdict:** VALID", "valid", ""},
		{"VALIDATED is not the token", "VALIDATED against the result.", "valid", "VALIDATED against the result."},
		{"INVALIDATE is not the token", "INVALIDATE the cache", "valid", "INVALIDATE the cache"},
		{"a letter or digit glued on is not the token", "VALID2 fine", "valid", "VALID2 fine"},
		{"verdict later in the reply is not read", "The answer is INVALID because it cites 200.", "valid", "The answer is INVALID because it cites 200."},
		{"label without a verdict", "Verdict: unclear", "valid", "Verdict: unclear"},
		{"no verdict keeps the whole reply", "  Looks right to me.  ", "valid", "Looks right to me."},
		{"empty reply", "", "valid", ""},
		{"whitespace only", " \n\t", "valid", ""},
		{"marks only", "**[]**", "valid", "**[]**"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			verdict, critique := parseVerdict(tt.reply)
			if verdict != tt.verdict || critique != tt.critique {
				t.Fatalf("parseVerdict(%q) = %q, %q; want %q, %q", tt.reply, verdict, critique, tt.verdict, tt.critique)
			}
		})
	}
}
