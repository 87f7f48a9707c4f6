package codegen_test

import (
	"testing"

	"github.com/nexus/nexus/internal/codegen"
)

// reviewSnippet is about 30 lines of the pandas code the generator is
// typically asked for.
const reviewSnippet = `import pandas as pd
import numpy as np

# Monthly sales per region, with each region's share of its month.
sales = df.dropna(subset=["sales", "region"]).copy()
sales["month"] = pd.to_datetime(sales["date"]).dt.to_period("M")

monthly = (
    sales.groupby(["region", "month"], as_index=False)
    .agg(total=("sales", "sum"), orders=("order_id", "nunique"))
    .sort_values(["month", "total"], ascending=[True, False])
)
totals = monthly.groupby("month")["total"].transform("sum")
monthly["share"] = np.where(totals > 0, monthly["total"] / totals, 0.0)


def band(total):
    if total > 100_000:
        return "large"
    return "small" if total < 10_000 else "medium"


monthly["band"] = monthly["total"].apply(band)
best = {r: g["total"].max() for r, g in monthly.groupby("region")}
pivot = monthly.pivot_table(index="region", columns="month", values="total", fill_value=0)
top = [f"{r}: {v:,.0f}" for r, v in sorted(best.items(), key=lambda kv: -kv[1])[:5]]
result = {"monthly": monthly, "pivot": pivot, "top": top}
`

// BenchmarkReviewPython measures the review of a typical reply. The
// "syntax" case is the standalone syntax check, which the generator used to
// run after the review as a second parse.
func BenchmarkReviewPython(b *testing.B) {
	b.Run("review", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r := codegen.ReviewCode(reviewSnippet, codegen.Python); !r.IsValid {
				b.Fatal(r.ErrorMessage)
			}
		}
	})
	b.Run("syntax", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := codegen.CheckPythonSyntax(reviewSnippet); err != nil {
				b.Fatal(err)
			}
		}
	})
}
