package api

import (
	"fmt"

	"github.com/nexus/nexus/config"
)

// fallbackFor says, per circuit, what the user can do while the LLM is
// away, as the seed's fallback messages did.
func fallbackFor(circuit string, retry int) fallbackInfo {
	fb := fallbackInfo{RetryAfterSeconds: retry}
	switch circuit {
	case config.CircuitDataAnalyst:
		fb.Message = fmt.Sprintf("The data analysis service is temporarily unavailable. It recovers on its own; try again in %d s.", retry)
		fb.Alternatives = []string{
			"Look at the first rows of your data to answer simple lookups yourself.",
			"Compute basic summary statistics (count, mean, min, max) per column.",
			"Plot the columns you care about with a simple bar or line chart.",
		}
	case config.CircuitCodeGenerator:
		fb.Message = fmt.Sprintf("Code generation is temporarily unavailable. It recovers on its own; try again in %d s.", retry)
		fb.Alternatives = []string{
			"Write the query or script by hand, starting from a previous generated snippet.",
			"Use pandas' describe(), groupby() and value_counts() for common summaries.",
			"Ask a narrower question once the service is back: shorter prompts generate faster.",
		}
	case config.CircuitCoTEngine:
		fb.Message = fmt.Sprintf("Answer review is temporarily unavailable; try again in %d s.", retry)
		fb.Alternatives = []string{
			"Use the unreviewed answer, checking its numbers against your data.",
			"Re-run the question later to get a reviewed answer.",
		}
	case config.CircuitVisualization:
		fb.Message = fmt.Sprintf("Chart suggestions are temporarily unavailable; try again in %d s.", retry)
		fb.Alternatives = []string{
			"Plot the result with matplotlib, seaborn or pandas' .plot().",
			"Use a bar chart for category totals and a line chart for values over time.",
		}
	default:
		fb.Message = fmt.Sprintf("The AI service is currently unavailable. Please try again in %d s.", retry)
		fb.Alternatives = []string{}
	}
	return fb
}
