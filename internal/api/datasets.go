package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// DatasetStore stores uploaded datasets; *dataset.Store is the real one.
type DatasetStore interface {
	// NewUpload starts an upload of a new dataset of one or more tables;
	// NewTablesUpload one of tables to add to dataset id.
	NewUpload(ctx context.Context, opts ...dataset.UploadOption) (*dataset.Upload, error)
	NewTablesUpload(ctx context.Context, id string) (*dataset.Upload, error)
	List(ctx context.Context) ([]dataset.Dataset, error)
	Get(ctx context.Context, id string) (dataset.Dataset, error)
	Delete(ctx context.Context, id string) error
	// Session opens a sandboxed view of a dataset's tables, for reading
	// rows and running the caller's own SQL.
	Session(ctx context.Context, id string) (*dataset.Session, error)
	// MaxRows is datasets.max_rows, the largest page of rows.
	MaxRows() int
	// Stats reports the store's size and its worker pool, for health.
	Stats() dataset.Stats
}

const maxNameChars = 200

// multipartAllowance is what a request body may hold besides the files:
// boundaries, part headers and the name part.
const multipartAllowance = 64 << 10

// uploadBody bounds and opens a multipart upload: maxUploadBytes is the
// store's limit on the files together. The whole body, every part and the
// preamble included, may be at most that plus multipartAllowance: a
// larger declared Content-Length is refused before anything is read, and
// a body that grows past it while streaming (chunked or lying) is cut
// off; both answer 413 payload_too_large.
type uploadBody struct {
	limit    int64
	tooLarge *Error
}

func newUploadBody(maxUploadBytes int64) uploadBody {
	limit := maxUploadBytes + multipartAllowance
	return uploadBody{limit: limit, tooLarge: &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Field: "file",
		Message: fmt.Sprintf("the request body is larger than the limit of %d bytes (the upload limit of %d bytes plus %d for the form)",
			limit, maxUploadBytes, multipartAllowance)}}
}

// parts streams the request's multipart parts to each, one at a time and
// unbuffered; each returns an error to stop. The store reports a body cut
// off by MaxBytesReader inside a file as KindTooLarge.
func (b uploadBody) parts(c echo.Context, each func(*multipart.Part) error) error {
	req := c.Request()
	mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEMultipartForm {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: "Content-Type must be multipart/form-data with a file part"}
	}
	if req.ContentLength > b.limit {
		return b.tooLarge
	}
	req.Body = http.MaxBytesReader(c.Response(), req.Body, b.limit)
	mr, err := req.MultipartReader()
	if err != nil {
		return invalid("file", "malformed multipart body: "+err.Error())
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return b.tooLarge
		}
		if err != nil {
			return invalid("file", "malformed multipart body: "+err.Error())
		}
		err = each(part)
		part.Close()
		if errors.As(err, &maxErr) {
			return b.tooLarge
		}
		if err != nil {
			return err
		}
	}
}

// handleUpload streams every multipart "file" part straight into the
// store, each becoming one table of the new dataset (named after its file:
// see dataset.TableName); nothing is buffered whole in memory. A "name"
// part, or ?name=, names the dataset. Any other part is refused, unread,
// with 400. The upload is atomic: if any file fails, no dataset is created
// and nothing is left on disk. maxUploadBytes bounds the files together.
func handleUpload(store DatasetStore, maxUploadBytes int64) echo.HandlerFunc {
	body := newUploadBody(maxUploadBytes)
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		up, err := store.NewUpload(ctx, uploadOwner(ctx))
		if err != nil {
			return err
		}
		defer up.Close()
		name := c.QueryParam("name")
		err = body.parts(c, func(part *multipart.Part) error {
			switch part.FormName() {
			case "name":
				b, err := io.ReadAll(io.LimitReader(part, maxNameChars+1))
				var maxErr *http.MaxBytesError
				if errors.As(err, &maxErr) {
					return err
				}
				if err != nil {
					return invalid("name", "malformed multipart body: "+err.Error())
				}
				if len(b) > maxNameChars {
					return invalid("name", "name must be at most 200 characters")
				}
				name = strings.TrimSpace(string(b))
				return nil
			case "file":
				return up.Add(ctx, part.FileName(), part)
			default:
				return invalid(part.FormName(), fmt.Sprintf("unexpected form part %q: only name and file are accepted", part.FormName()))
			}
		})
		if err != nil {
			return err
		}
		if up.Files() == 0 {
			return invalid("file", "a file part is required")
		}
		ds, err := up.Commit(ctx, name)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, detailOf(ds))
	}
}

// handleAddTables adds the multipart "file" parts to a dataset as new
// tables, atomically: all of them or, if any fails, none. A query running
// meanwhile sees the tables from before or from after, never a mix.
func handleAddTables(store DatasetStore, maxUploadBytes int64) echo.HandlerFunc {
	body := newUploadBody(maxUploadBytes)
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		up, err := store.NewTablesUpload(ctx, c.Param("id"))
		if err != nil {
			return err
		}
		defer up.Close()
		err = body.parts(c, func(part *multipart.Part) error {
			if part.FormName() != "file" {
				return invalid(part.FormName(), fmt.Sprintf("unexpected form part %q: only file is accepted", part.FormName()))
			}
			return up.Add(ctx, part.FileName(), part)
		})
		if err != nil {
			return err
		}
		if up.Files() == 0 {
			return invalid("file", "a file part is required")
		}
		ds, err := up.Commit(ctx, "")
		if err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, detailOf(ds))
	}
}

func handleListDatasets(store DatasetStore) echo.HandlerFunc {
	return func(c echo.Context) error {
		list, err := store.List(c.Request().Context())
		if err != nil {
			return err
		}
		list = visibleDatasets(c.Request().Context(), list)
		if list == nil {
			list = []dataset.Dataset{}
		}
		return c.JSON(http.StatusOK, map[string]any{"datasets": list})
	}
}

// datasetDetail is a dataset with its tables, each with its profile. The
// top-level profile is the only table's, and null for several tables.
type datasetDetail struct {
	dataset.Dataset
	Profile *dataset.Profile `json:"profile"`
}

func detailOf(ds dataset.Dataset) datasetDetail {
	d := datasetDetail{Dataset: ds}
	if len(ds.Tables) == 1 {
		d.Profile = &ds.Tables[0].Profile
	}
	return d
}

func handleGetDataset(store DatasetStore) echo.HandlerFunc {
	return func(c echo.Context) error {
		ds, err := store.Get(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, detailOf(ds))
	}
}

// defaultRowsLimit is the page size of GET /datasets/{id}/rows.
const defaultRowsLimit = 50

// pageParams reads the rows routes' ?table=&limit=&offset= (table is the
// caller's to read): no other parameter and none twice; limit from 1 to
// maxRows (named by what, the setting that caps it), default 50; offset
// 0 or more.
func pageParams(c echo.Context, maxRows int, what string) (limit int, offset int64, err error) {
	params := c.QueryParams()
	for k, v := range params {
		switch {
		case k != "table" && k != "limit" && k != "offset":
			return 0, 0, invalid(k, fmt.Sprintf("unknown query parameter %q: use table, limit and offset", k))
		case len(v) > 1:
			return 0, 0, invalid(k, fmt.Sprintf("%s is given %d times", k, len(v)))
		}
	}
	limit = defaultRowsLimit
	if v, ok := params["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > maxRows {
			return 0, 0, invalid("limit", fmt.Sprintf("limit must be an integer from 1 to %d (%s), got %q", maxRows, what, v[0]))
		}
		limit = n
	}
	limit = min(limit, maxRows)
	if v, ok := params["offset"]; ok {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil || n < 0 {
			return 0, 0, invalid("offset", fmt.Sprintf("offset must be an integer of 0 or more, got %q", v[0]))
		}
		offset = n
	}
	return limit, offset, nil
}

// rowsResponse is one page of a table's rows.
type rowsResponse struct {
	DatasetID string           `json:"dataset_id"`
	Table     string           `json:"table"`
	Columns   []dataset.Column `json:"columns"`
	Rows      [][]any          `json:"rows"`
	Offset    int64            `json:"offset"`
	Limit     int              `json:"limit"`
	// TotalRows is the table's size.
	TotalRows int64 `json:"total_rows"`
	// NextOffset is where the next page starts; null past the end.
	NextOffset *int64 `json:"next_offset"`
	// Truncated is set when datasets.max_result_bytes cut the page
	// shorter than limit.
	Truncated bool `json:"truncated"`
}

// handleRows serves GET /datasets/{id}/rows?table=&limit=&offset=: a page
// of a table's rows in load order, read without the LLM. table may be
// left out when the dataset has one table.
func handleRows(store DatasetStore) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit, offset, err := pageParams(c, store.MaxRows(), "datasets.max_rows")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		sess, err := store.Session(ctx, c.Param("id"))
		if err != nil {
			return err
		}
		defer sess.Close()
		tables := sess.Tables()
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.Name
		}
		name := c.QueryParam("table")
		if name == "" {
			if len(tables) != 1 {
				return invalid("table", fmt.Sprintf("the dataset has %d tables (%s): name one with ?table=", len(tables), strings.Join(names, ", ")))
			}
			name = tables[0].Name
		}
		t, ok := sess.Table(name)
		if !ok {
			return invalid("table", fmt.Sprintf("the dataset has no table named %q; its tables are %s", name, strings.Join(names, ", ")))
		}
		res, err := sess.Rows(ctx, t.Name, limit, offset)
		if err != nil {
			return err
		}
		out := rowsResponse{DatasetID: c.Param("id"), Table: t.Name, Columns: res.Columns, Rows: res.Rows,
			Offset: offset, Limit: limit, TotalRows: t.Rows, Truncated: res.Truncated}
		if next := offset + int64(len(res.Rows)); next < t.Rows {
			out.NextOffset = &next
		}
		return c.JSON(http.StatusOK, out)
	}
}

type queryRequest struct {
	SQL *string `json:"sql"`
}

// Validate implements validator.
func (r *queryRequest) Validate() error {
	if r.SQL == nil || strings.TrimSpace(*r.SQL) == "" {
		return invalid("sql", "sql is required")
	}
	return nil
}

// queryResponse is the result of the caller's own SQL.
type queryResponse struct {
	DatasetID string `json:"dataset_id"`
	dataset.Result
}

// handleQuery serves POST /datasets/{id}/query: the caller's own SQL, no
// LLM involved, through the same guard and sandbox as the planner's (one
// SELECT over the dataset's tables; anything else is 422 unsafe_sql).
func handleQuery(store DatasetStore, limit int64) echo.HandlerFunc {
	return func(c echo.Context) error {
		in, err := decode[queryRequest](c, limit)
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		sess, err := store.Session(ctx, c.Param("id"))
		if err != nil {
			return err
		}
		defer sess.Close()
		res, err := sess.Query(ctx, *in.SQL)
		if err != nil {
			return err
		}
		if err := stillWanted(c); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, queryResponse{DatasetID: c.Param("id"), Result: res})
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
