package api

import (
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/agent"
)

// Limits on request fields.
const (
	maxQueryChars  = 4000
	maxPromptChars = 8000
	maxModelChars  = 200
)

type analyzeRequest struct {
	Query *string     `json:"query"`
	Data  *inlineData `json:"data"`
	Model *string     `json:"model"`
}

type inlineData struct {
	Format  *string `json:"format"`
	Content *string `json:"content"`
}

// Validate implements validator.
func (r *analyzeRequest) Validate() error {
	if r.Query == nil {
		return invalid("query", "query is required")
	}
	if n := utf8.RuneCountInString(*r.Query); n < 1 || n > maxQueryChars {
		return invalid("query", fmt.Sprintf("query must be 1..%d characters, got %d", maxQueryChars, n))
	}
	if r.Data != nil {
		if r.Data.Format == nil || (*r.Data.Format != "csv" && *r.Data.Format != "json") {
			return invalid("data.format", `data.format must be "csv" or "json"`)
		}
		if r.Data.Content == nil || *r.Data.Content == "" {
			return invalid("data.content", "data.content is required when data is given")
		}
	}
	return validModel(r.Model)
}

func validModel(m *string) error {
	if m != nil && (len(*m) == 0 || len(*m) > maxModelChars) {
		return invalid("model", fmt.Sprintf("model must be 1..%d characters", maxModelChars))
	}
	return nil
}

type analyzeResponse struct {
	Answer       string  `json:"answer"`
	Model        string  `json:"model"`
	Circuit      string  `json:"circuit"`
	FallbackUsed bool    `json:"fallback_used"`
	DurationMS   float64 `json:"duration_ms"`
}

func handleAnalyze(a Analyzer, limit int64) echo.HandlerFunc {
	return func(c echo.Context) error {
		in, err := decode[analyzeRequest](c, limit)
		if err != nil {
			return err
		}
		req := agent.Request{Query: *in.Query, Model: deref(in.Model)}
		if in.Data != nil {
			req.Data = &agent.InlineData{Format: *in.Data.Format, Content: *in.Data.Content}
		}
		ans, err := a.Analyze(c.Request().Context(), req)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, analyzeResponse{
			Answer:     ans.Answer,
			Model:      ans.Model,
			Circuit:    ans.Circuit,
			DurationMS: millis(ans.Duration.Seconds()),
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func millis(seconds float64) float64 {
	return float64(int64(seconds*1e6)) / 1000
}
