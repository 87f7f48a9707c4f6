package api

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/codegen"
)

type generateRequest struct {
	Prompt    *string `json:"prompt"`
	Language  *string `json:"language"`
	Model     *string `json:"model"`
	DatasetID *string `json:"dataset_id"`
	Source    *string `json:"source"`
}

// Validate implements validator.
func (r *generateRequest) Validate() error {
	if r.Prompt == nil || strings.TrimSpace(*r.Prompt) == "" {
		return invalid("prompt", "prompt is required")
	}
	if n := utf8.RuneCountInString(*r.Prompt); n > maxPromptChars {
		return invalid("prompt", fmt.Sprintf("prompt must be at most %d characters, got %d", maxPromptChars, n))
	}
	if r.Language != nil && *r.Language != string(codegen.Python) && *r.Language != string(codegen.SQL) {
		return invalid("language", fmt.Sprintf(`language must be "python" or "sql", got %q`, *r.Language))
	}
	if r.DatasetID != nil && *r.DatasetID == "" {
		return invalid("dataset_id", "dataset_id must not be empty")
	}
	if err := validSource(r.Source, r.DatasetID != nil); err != nil {
		return err
	}
	return validModel(r.Model)
}

type generateResponse struct {
	Code         string   `json:"code"`
	Language     string   `json:"language"`
	IsValid      bool     `json:"is_valid"`
	ErrorMessage *string  `json:"error_message"`
	Warnings     []string `json:"warnings"`
	Model        string   `json:"model"`
	Circuit      string   `json:"circuit"`
	FallbackUsed bool     `json:"fallback_used"`
	// Provider is the provider whose target answered.
	Provider string `json:"provider"`
	// Attempts is how many LLM requests the call made, retries, failovers
	// and hedges included.
	Attempts int `json:"attempts"`
	// Failover is true when a target other than the circuit's first
	// answered; omitted otherwise.
	Failover bool `json:"failover,omitempty"`
}

func handleGenerate(g CodeGenerator, limit int64) echo.HandlerFunc {
	return func(c echo.Context) error {
		in, err := decode[generateRequest](c, limit)
		if err != nil {
			return err
		}
		if in.Source != nil && !keyAllowsSource(c, *in.Source) {
			return sourceNotFound(*in.Source)
		}
		lang := codegen.Python
		if in.Language != nil {
			lang = codegen.Language(*in.Language)
		}
		res, err := g.Generate(c.Request().Context(), codegen.Request{Prompt: *in.Prompt, Language: lang, Model: deref(in.Model),
			DatasetID: deref(in.DatasetID), Source: deref(in.Source)})
		if err != nil {
			return aboutData(err, deref(in.DatasetID), deref(in.Source))
		}
		out := generateResponse{
			Code:     res.Code,
			Language: string(res.Language),
			IsValid:  res.Review.IsValid,
			Warnings: res.Review.Warnings,
			Model:    res.Model,
			Circuit:  res.Circuit,
			Provider: res.Provider,
			Attempts: res.Attempts,
			Failover: res.Failover,
		}
		if out.Warnings == nil {
			out.Warnings = []string{}
		}
		if !res.Review.IsValid {
			msg := res.Review.ErrorMessage
			out.ErrorMessage = &msg
		}
		if err := stillWanted(c); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}
}
