package api

import (
	"context"
	"errors"
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

// handleUpload streams the multipart "file" part straight into the store,
// which enforces the size limit while reading; nothing is buffered whole
// in memory. A "name" part, if any, must come before the file (curl -F
// sends parts in the order given); ?name= works too.
func handleUpload(store DatasetStore) echo.HandlerFunc {
	return func(c echo.Context) error {
		mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
		if err != nil || mt != echo.MIMEMultipartForm {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
				Message: "Content-Type must be multipart/form-data with a file part"}
		}
		mr, err := c.Request().MultipartReader()
		if err != nil {
			return invalid("file", "malformed multipart body: "+err.Error())
		}
		name := c.QueryParam("name")
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return invalid("file", "a file part is required")
			}
			if err != nil {
				return invalid("file", "malformed multipart body: "+err.Error())
			}
			switch part.FormName() {
			case "name":
				b, err := io.ReadAll(io.LimitReader(part, maxNameChars+1))
				if err != nil || len(b) > maxNameChars {
					return invalid("name", "name must be at most 200 characters")
				}
				name = strings.TrimSpace(string(b))
			case "file":
				ds, err := store.Create(c.Request().Context(), name, part.FileName(), part)
				if err != nil {
					return err
				}
				return c.JSON(http.StatusCreated, ds)
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
