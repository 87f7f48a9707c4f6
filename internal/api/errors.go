package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/pgsource"
	"github.com/nexus/nexus/internal/infra/redact"
)

// StatusClientClosed is logged for requests whose client hung up (nginx's
// convention); no response reaches such a client.
const StatusClientClosed = 499

// Error is an API error with a stable code. Field names the offending input
// field, when there is one. A RetryAfter above zero is sent as Retry-After,
// in whole seconds rounded up.
type Error struct {
	Status     int
	Code       string
	Message    string
	Field      string
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func invalid(field, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: msg, Field: field}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// errorHandler is the one place where errors become HTTP responses.
// requestTimeout is the limit requestDeadline enforces, for the message.
func errorHandler(log *slog.Logger, redactor *redact.Redactor, requestTimeout time.Duration) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		if timedOut(c, err) {
			writeError(c, http.StatusGatewayTimeout, "request_timeout",
				fmt.Sprintf("the request took longer than the limit of %s and was stopped", requestTimeout), "")
			return
		}
		// errors.AsType, unlike errors.As, does not move a target to the
		// heap: this runs for every error response, the open circuit's
		// 503 included.
		if errors.Is(err, dataset.ErrNotFound) {
			writeError(c, http.StatusNotFound, "dataset_not_found", "no dataset with that id", "")
			return
		}
		if dataErr, ok := errors.AsType[*dataset.Error](err); ok {
			writeDatasetError(c, dataErr)
			return
		}
		if errors.Is(err, pgsource.ErrUnknownSource) {
			writeError(c, http.StatusNotFound, "source_not_found", "no source with that name", "")
			return
		}
		if srcErr, ok := errors.AsType[*pgsource.Error](err); ok && srcErr.Kind != pgsource.KindInvalidConfig {
			writeSourceError(c, srcErr, redactor)
			return
		}
		if apiErr, ok := errors.AsType[*Error](err); ok {
			if apiErr.RetryAfter > 0 {
				c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(apiErr.RetryAfter)))
			}
			writeError(c, apiErr.Status, apiErr.Code, apiErr.Message, apiErr.Field)
			return
		}
		if inputErr, ok := errors.AsType[*agent.InputError](err); ok {
			writeError(c, http.StatusBadRequest, "invalid_request", inputErr.Message, inputErr.Field)
			return
		}
		if llmErr, ok := errors.AsType[*circuit.LLMError](err); ok {
			writeLLMError(c, llmErr, err)
			return
		}
		if echoErr, ok := errors.AsType[*echo.HTTPError](err); ok {
			writeEchoError(c, echoErr)
			return
		}
		if errors.Is(err, context.Canceled) && connContext(c).Err() != nil {
			c.Response().WriteHeader(StatusClientClosed)
			return
		}
		// The detail goes to the log only, still under the one
		// redaction routine: an unexpected error may quote a URL or a
		// configured secret.
		log.ErrorContext(c.Request().Context(), "internal error",
			slog.String("request_id", requestIDOf(c)), slog.String("error", redactor.Redact(err.Error())))
		writeError(c, http.StatusInternalServerError, "internal_error", "internal server error", "")
	}
}

func writeError(c echo.Context, status int, code, msg, field string) {
	_ = c.JSON(status, errorBody{Error: errorDetail{Code: code, Message: msg, Field: field}})
}

func writeEchoError(c echo.Context, he *echo.HTTPError) {
	msg := http.StatusText(he.Code)
	if m, ok := he.Message.(string); ok && m != "" {
		msg = m
	}
	code := map[int]string{
		http.StatusNotFound:              "not_found",
		http.StatusMethodNotAllowed:      "method_not_allowed",
		http.StatusRequestEntityTooLarge: "payload_too_large",
		http.StatusUnsupportedMediaType:  "unsupported_media_type",
		http.StatusBadRequest:            "invalid_request",
	}[he.Code]
	if code == "" {
		code = "http_" + strconv.Itoa(he.Code)
	}
	writeError(c, he.Code, code, msg, "")
}

// unavailableBody is the 503 sent when the LLM cannot answer.
type unavailableBody struct {
	FallbackUsed bool         `json:"fallback_used"`
	Circuit      string       `json:"circuit"`
	CircuitState string       `json:"circuit_state"`
	Error        errorDetail  `json:"error"`
	Fallback     fallbackInfo `json:"fallback"`
	// Targets lists each target of a circuit with more than one: provider,
	// model, state and last error (redacted).
	Targets []circuit.TargetReport `json:"targets,omitempty"`
	// Attempts is how many LLM requests the call made before giving up.
	Attempts int `json:"attempts"`
	// Profile is the dataset's profile when the analyst had data.
	Profile *dataset.Profile `json:"profile,omitempty"`
	// The code generator's 503 also carries the seed's empty result.
	Code         *string `json:"code,omitempty"`
	IsValid      *bool   `json:"is_valid,omitempty"`
	ErrorMessage *string `json:"error_message,omitempty"`
}

type fallbackInfo struct {
	Message           string   `json:"message"`
	Alternatives      []string `json:"alternatives"`
	RetryAfterSeconds int      `json:"retry_after_seconds"`
}

// datasetErrors maps dataset error kinds to status and code.
var datasetErrors = map[dataset.Kind]struct {
	status int
	code   string
}{
	dataset.KindInvalid:            {http.StatusUnprocessableEntity, "invalid_dataset"},
	dataset.KindTooLarge:           {http.StatusRequestEntityTooLarge, "payload_too_large"},
	dataset.KindUnsafeSQL:          {http.StatusUnprocessableEntity, "unsafe_sql"},
	dataset.KindSQL:                {http.StatusUnprocessableEntity, "sql_error"},
	dataset.KindTimeout:            {http.StatusUnprocessableEntity, "query_timeout"},
	dataset.KindQueryTooExpensive:  {http.StatusUnprocessableEntity, "query_too_expensive"},
	dataset.KindUploadTooExpensive: {http.StatusUnprocessableEntity, "upload_too_expensive"},
	dataset.KindTooComplex:         {http.StatusUnprocessableEntity, "input_too_complex"},
	dataset.KindBusy:               {http.StatusServiceUnavailable, "busy"},
}

func writeDatasetError(c echo.Context, e *dataset.Error) {
	m, ok := datasetErrors[e.Kind]
	if !ok {
		m.status, m.code = http.StatusInternalServerError, "internal_error"
	}
	field := ""
	switch e.Kind {
	case dataset.KindInvalid, dataset.KindTooLarge, dataset.KindUploadTooExpensive, dataset.KindTooComplex:
		field = "file"
		if c.Path() == "/analyze" {
			field = "data.content" // inline data
		}
	case dataset.KindBusy:
		c.Response().Header().Set("Retry-After", "1")
	}
	writeError(c, m.status, m.code, e.Message, field)
}

// sourceRetryAfter is the Retry-After of 503 source_unavailable: the
// source's pool reconnects on the next query, so a few seconds suffice
// for a restart or a network blip.
const sourceRetryAfter = 5

// sourceErrors maps a live source's error kinds to status and code: the
// SQL's faults as a dataset's, a database that cannot be reached (or
// refuses to serve an unsafe role) as 503, never as an LLM failure.
var sourceErrors = map[pgsource.Kind]struct {
	status int
	code   string
}{
	pgsource.KindUnsafeSQL:    {http.StatusUnprocessableEntity, "unsafe_sql"},
	pgsource.KindSQL:          {http.StatusUnprocessableEntity, "sql_error"},
	pgsource.KindTimeout:      {http.StatusUnprocessableEntity, "query_timeout"},
	pgsource.KindTooExpensive: {http.StatusUnprocessableEntity, "query_too_expensive"},
	pgsource.KindUnavailable:  {http.StatusServiceUnavailable, "source_unavailable"},
	pgsource.KindUnsafeRole:   {http.StatusServiceUnavailable, "source_unsafe_role"},
	pgsource.KindNotFound:     {http.StatusNotFound, "table_not_found"},
}

// writeSourceError answers for a source's error. The SQL's faults carry
// the message as the planner sees it; a 503 names the source too. The
// message is the source's own scrubbed text, redacted once more.
func writeSourceError(c echo.Context, e *pgsource.Error, redactor *redact.Redactor) {
	m, ok := sourceErrors[e.Kind]
	if !ok {
		m.status, m.code = http.StatusInternalServerError, "internal_error"
	}
	msg := e.Message
	if m.status == http.StatusServiceUnavailable {
		msg = e.Error()
	}
	if e.Kind == pgsource.KindUnavailable {
		c.Response().Header().Set("Retry-After", strconv.Itoa(sourceRetryAfter))
	}
	writeError(c, m.status, m.code, redactor.Redact(msg), "")
}

// writeLLMError answers for an LLM that could not answer. full is the whole
// error chain, which may carry the dataset profile.
func writeLLMError(c echo.Context, e *circuit.LLMError, full error) {
	switch e.Kind {
	case llm.KindRejected:
		writeError(c, http.StatusUnprocessableEntity, string(e.Kind), "the LLM rejected the request: "+e.Message, "")
		return
	case llm.KindCanceled:
		c.Response().WriteHeader(StatusClientClosed)
		return
	}
	retry := retryAfterSeconds(e.RetryAfter)
	fb := fallbackFor(e, retry, dataOf(full))
	body := unavailableBody{
		FallbackUsed: true,
		Circuit:      e.Circuit,
		CircuitState: e.State,
		Error:        errorDetail{Code: string(e.Kind), Message: e.Message},
		Fallback:     fb,
		Targets:      e.Targets,
		Attempts:     e.Attempts,
	}
	unavailable, _ := errors.AsType[*agent.UnavailableError](full)
	if unavailable != nil {
		body.Profile = unavailable.Profile
	}
	if e.Circuit == config.CircuitCodeGenerator && unavailable == nil {
		code, valid, msg := "", false, "Code generation service temporarily unavailable"
		body.Code, body.IsValid, body.ErrorMessage = &code, &valid, &msg
	}
	c.Response().Header().Set("Retry-After", strconv.Itoa(retry))
	_ = c.JSON(http.StatusServiceUnavailable, body)
}

// retryAfterSeconds rounds up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		return 1
	}
	return s
}
