package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// DatasetStore stores uploaded datasets; *dataset.Store is the real one.
type DatasetStore interface {
	Create(ctx context.Context, name, filename string, r io.Reader) (dataset.Dataset, error)
	List(ctx context.Context) ([]dataset.Dataset, error)
	Get(ctx context.Context, id string) (dataset.Dataset, error)
	Profile(ctx context.Context, id string) (dataset.Profile, error)
	Delete(ctx context.Context, id string) error
	// Stats reports the store's size and its worker pool, for health.
	Stats() dataset.Stats
}

const maxNameChars = 200

// multipartAllowance is what a request body may hold besides the file:
// boundaries, part headers and the name part.
const multipartAllowance = 64 << 10

// handleUpload streams the multipart "file" part straight into the store,
// which enforces the size limit while reading; nothing is buffered whole
// in memory. A "name" part, if any, must come before the file (curl -F
// sends parts in the order given); ?name= works too. Any other part is
// refused, unread, with 400.
//
// maxUploadBytes is the store's limit on the file. The whole body, every
// part and the preamble included, may be at most that plus
// multipartAllowance: a larger declared Content-Length is refused before
// anything is read, and a body that grows past it while streaming (chunked
// or lying) is cut off; both answer 413 payload_too_large.
func handleUpload(store DatasetStore, maxUploadBytes int64) echo.HandlerFunc {
	bodyLimit := maxUploadBytes + multipartAllowance
	tooLarge := &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Field: "file",
		Message: fmt.Sprintf("the request body is larger than the limit of %d bytes (the upload limit of %d bytes plus %d for the form)",
			bodyLimit, maxUploadBytes, multipartAllowance)}
	return func(c echo.Context) error {
		req := c.Request()
		mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
		if err != nil || mt != echo.MIMEMultipartForm {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
				Message: "Content-Type must be multipart/form-data with a file part"}
		}
		if req.ContentLength > bodyLimit {
			return tooLarge
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, bodyLimit)
		mr, err := req.MultipartReader()
		if err != nil {
			return invalid("file", "malformed multipart body: "+err.Error())
		}
		name := c.QueryParam("name")
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return invalid("file", "a file part is required")
			}
			var maxErr *http.MaxBytesError
			if errors.As(err, &maxErr) {
				return tooLarge
			}
			if err != nil {
				return invalid("file", "malformed multipart body: "+err.Error())
			}
			switch part.FormName() {
			case "name":
				b, err := io.ReadAll(io.LimitReader(part, maxNameChars+1))
				if errors.As(err, &maxErr) {
					return tooLarge
				}
				if err != nil || len(b) > maxNameChars {
					return invalid("name", "name must be at most 200 characters")
				}
				name = strings.TrimSpace(string(b))
			case "file":
				// The store reports a body cut off by MaxBytesReader as
				// KindTooLarge.
				ds, err := store.Create(req.Context(), name, part.FileName(), part)
				if err != nil {
					return err
				}
				return c.JSON(http.StatusCreated, ds)
			default:
				return invalid(part.FormName(), fmt.Sprintf("unexpected form part %q: only name and file are accepted", part.FormName()))
			}
			part.Close()
		}
	}
}

func handleListDatasets(store DatasetStore) echo.HandlerFunc {
	return func(c echo.Context) error {
		list, err := store.List(c.Request().Context())
		if err != nil {
			return err
		}
		if list == nil {
			list = []dataset.Dataset{}
		}
		return c.JSON(http.StatusOK, map[string]any{"datasets": list})
	}
}

type datasetWithProfile struct {
	dataset.Dataset
	Profile dataset.Profile `json:"profile"`
}

func handleGetDataset(store DatasetStore) echo.HandlerFunc {
	return func(c echo.Context) error {
		ds, err := store.Get(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		p, err := store.Profile(c.Request().Context(), ds.ID)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, datasetWithProfile{Dataset: ds, Profile: p})
	}
}

func handleDeleteDataset(store DatasetStore) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := store.Delete(c.Request().Context(), c.Param("id")); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}
