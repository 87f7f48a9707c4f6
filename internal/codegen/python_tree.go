package codegen

import (
	sitter "github.com/tree-sitter/go-tree-sitter"
)

// tsKind is a tree-sitter node kind of the Python grammar, by number:
// comparing numbers costs no call into C and no string.
type tsKind = uint16

// tsField is a tree-sitter field of the Python grammar, by number.
type tsField = uint16

// pk holds the node kinds the review looks at. It is built once from the
// grammar and never changed.
var pk = struct {
	comment, lineContinuation                                           tsKind
	identifier, attribute, call, argumentList, keywordArgument          tsKind
	listSplat, dictionarySplat, parenthesizedListSplat                  tsKind
	str, strStart, strContent, concatenatedString, interpolation        tsKind
	formatExpression, expressionStatement                               tsKind
	importStatement, importFromStatement, futureImportStatement         tsKind
	aliasedImport, dottedName, relativeImport, wildcardImport           tsKind
	whileStatement, forStatement, functionDefinition, classDefinition   tsKind
	lambda, breakStatement, returnStatement, block                      tsKind
	assignment, augmentedAssignment, namedExpression, forInClause       tsKind
	asPatternTarget, exceptClause, keywordPattern                       tsKind
	patternList, tuplePattern, listPattern, tuple, list, expressionList tsKind
	parenthesizedExpression, listSplatPattern                           tsKind
	dictionary, set, subscript, listComprehension, setComprehension     tsKind
	dictionaryComprehension, generatorExpression, parameters            tsKind
	dictPattern, classPattern, typeParameter                            tsKind
	trueNode, falseNode, noneNode, integer, float, notOperator          tsKind
	pair, conditionalExpression, booleanOperator, binaryOperator        tsKind
}{
	comment:                 kindID("comment"),
	lineContinuation:        kindID("line_continuation"),
	identifier:              kindID("identifier"),
	attribute:               kindID("attribute"),
	call:                    kindID("call"),
	argumentList:            kindID("argument_list"),
	keywordArgument:         kindID("keyword_argument"),
	listSplat:               kindID("list_splat"),
	dictionarySplat:         kindID("dictionary_splat"),
	parenthesizedListSplat:  kindID("parenthesized_list_splat"),
	str:                     kindID("string"),
	strStart:                kindID("string_start"),
	strContent:              kindID("string_content"),
	concatenatedString:      kindID("concatenated_string"),
	interpolation:           kindID("interpolation"),
	formatExpression:        kindID("format_expression"),
	expressionStatement:     kindID("expression_statement"),
	importStatement:         kindID("import_statement"),
	importFromStatement:     kindID("import_from_statement"),
	futureImportStatement:   kindID("future_import_statement"),
	aliasedImport:           kindID("aliased_import"),
	dottedName:              kindID("dotted_name"),
	relativeImport:          kindID("relative_import"),
	wildcardImport:          kindID("wildcard_import"),
	whileStatement:          kindID("while_statement"),
	forStatement:            kindID("for_statement"),
	functionDefinition:      kindID("function_definition"),
	classDefinition:         kindID("class_definition"),
	lambda:                  kindID("lambda"),
	breakStatement:          kindID("break_statement"),
	returnStatement:         kindID("return_statement"),
	block:                   kindID("block"),
	assignment:              kindID("assignment"),
	augmentedAssignment:     kindID("augmented_assignment"),
	namedExpression:         kindID("named_expression"),
	forInClause:             kindID("for_in_clause"),
	asPatternTarget:         kindID("as_pattern_target"),
	exceptClause:            kindID("except_clause"),
	keywordPattern:          kindID("keyword_pattern"),
	patternList:             kindID("pattern_list"),
	tuplePattern:            kindID("tuple_pattern"),
	listPattern:             kindID("list_pattern"),
	tuple:                   kindID("tuple"),
	list:                    kindID("list"),
	expressionList:          kindID("expression_list"),
	parenthesizedExpression: kindID("parenthesized_expression"),
	listSplatPattern:        kindID("list_splat_pattern"),
	dictionary:              kindID("dictionary"),
	set:                     kindID("set"),
	subscript:               kindID("subscript"),
	listComprehension:       kindID("list_comprehension"),
	setComprehension:        kindID("set_comprehension"),
	dictionaryComprehension: kindID("dictionary_comprehension"),
	generatorExpression:     kindID("generator_expression"),
	parameters:              kindID("parameters"),
	dictPattern:             kindID("dict_pattern"),
	classPattern:            kindID("class_pattern"),
	typeParameter:           kindID("type_parameter"),
	trueNode:                kindID("true"),
	falseNode:               kindID("false"),
	noneNode:                kindID("none"),
	integer:                 kindID("integer"),
	float:                   kindID("float"),
	notOperator:             kindID("not_operator"),
	pair:                    kindID("pair"),
	conditionalExpression:   kindID("conditional_expression"),
	booleanOperator:         kindID("boolean_operator"),
	binaryOperator:          kindID("binary_operator"),
}

// pf holds the fields the review looks at, built once like pk.
var pf = struct {
	object, attribute, function, arguments, name, alias tsField
	left, body, condition, argument, moduleName, value  tsField
}{
	object:     fieldID("object"),
	attribute:  fieldID("attribute"),
	function:   fieldID("function"),
	arguments:  fieldID("arguments"),
	name:       fieldID("name"),
	alias:      fieldID("alias"),
	left:       fieldID("left"),
	body:       fieldID("body"),
	condition:  fieldID("condition"),
	argument:   fieldID("argument"),
	moduleName: fieldID("module_name"),
	value:      fieldID("value"),
}

// kindID returns the number of a named node kind, and panics if the
// grammar has no such kind: that is a programming error, which every test
// of this package shows at once.
func kindID(kind string) tsKind {
	id := pythonLanguage.IdForNodeKind(kind, true)
	if id == 0 {
		panic("codegen: the Python grammar has no node kind " + kind)
	}
	return id
}

// fieldID returns the number of a field, and panics like kindID.
func fieldID(field string) tsField {
	id := pythonLanguage.FieldIdForName(field)
	if id == 0 {
		panic("codegen: the Python grammar has no field " + field)
	}
	return id
}

// fieldKinds are the node kinds whose children's fields the checks read
// (the object or attribute of an attribute, the function of a call, the
// left of an assignment, the body of a loop...). Reading a field costs a
// call into C, so other nodes get field 0.
var fieldKinds = func() []bool {
	kinds := make([]bool, pythonLanguage.NodeKindCount())
	for _, k := range []tsKind{pk.attribute, pk.call, pk.keywordArgument,
		pk.assignment, pk.augmentedAssignment, pk.namedExpression,
		pk.forStatement, pk.whileStatement, pk.forInClause, pk.exceptClause} {
		kinds[k] = true
	}
	return kinds
}()

// maxNesting is the deepest nesting of blocks and brackets that code may
// have. CPython refuses a 100th level of indentation ("too many levels of
// indentation") and a 201st of brackets; counting both together is
// stricter, and no analysis code comes near it.
const maxNesting = 100

// nestingStep returns 1 for the node kinds that open a level of nesting: a
// block, or a construct in brackets.
func nestingStep(k tsKind) int {
	switch k {
	case pk.block, pk.parenthesizedExpression, pk.argumentList, pk.list,
		pk.tuple, pk.dictionary, pk.set, pk.subscript, pk.listComprehension,
		pk.setComprehension, pk.dictionaryComprehension, pk.generatorExpression,
		pk.parameters, pk.tuplePattern, pk.listPattern, pk.dictPattern,
		pk.classPattern, pk.parenthesizedListSplat, pk.interpolation,
		pk.formatExpression, pk.typeParameter:
		return 1
	}
	return 0
}

// pyFrame is one node on the path from the root of a walk to the node
// being visited.
type pyFrame struct {
	node  sitter.Node
	kind  tsKind
	field tsField // the node's field in its parent: 0 for none, and unless the parent is of fieldKinds
	nest  int     // levels of nesting (nestingStep) down to this node

	// The walk's place among the node's named children.
	next, count uint
	kids        []sitter.Node // the children of a wide node, listed at once
}

// wideNode is the number of named children from which walkTree lists a
// node's children in one pass of a cursor. Tree-sitter finds the i-th
// child by counting from the first, so asking for each child in turn is
// quadratic, but cheaper for the few children most nodes have.
const wideNode = 16

// fieldNames maps the names of the fields in pf to their numbers.
var fieldNames = map[string]tsField{
	"object": pf.object, "attribute": pf.attribute, "function": pf.function,
	"arguments": pf.arguments, "name": pf.name, "alias": pf.alias,
	"left": pf.left, "body": pf.body,
	"condition": pf.condition, "argument": pf.argument,
	"module_name": pf.moduleName,
}

// walkTree visits root and every named node under it in document order.
// visit gets the path from root to the node, the node last; it returns
// false to skip the node's children, and stop set to true to end the walk.
// Anonymous nodes (punctuation and keywords) are not visited: they hold
// nothing to check, and every node costs calls into C.
//
// The walk is a loop, not a recursion: path is the walk's stack, so no
// input can exhaust the goroutine stack. path is reused across calls to
// save allocations, and returned.
func walkTree(root *sitter.Node, path []pyFrame, visit func(path []pyFrame) (descend, stop bool)) []pyFrame {
	var cursor *sitter.TreeCursor // made for the first wide node
	defer func() {
		if cursor != nil {
			cursor.Close()
		}
	}()
	open := func(f *pyFrame) {
		f.count = f.node.NamedChildCount()
		if f.count >= wideNode {
			if cursor == nil {
				cursor = f.node.Walk()
			}
			f.kids = f.node.NamedChildren(cursor)
		}
	}
	kind := root.KindId()
	path = append(path[:0], pyFrame{node: *root, kind: kind, nest: nestingStep(kind)})
	if descend, stop := visit(path); stop || !descend {
		return path
	}
	open(&path[0])
	for len(path) > 0 {
		top := &path[len(path)-1]
		if top.next >= top.count {
			path = path[:len(path)-1]
			continue
		}
		i := top.next
		top.next++
		var n sitter.Node
		if top.kids != nil {
			n = top.kids[i]
		} else {
			n = *top.node.NamedChild(i)
		}
		f := pyFrame{node: n, kind: n.KindId(), nest: top.nest}
		f.nest += nestingStep(f.kind)
		if int(top.kind) < len(fieldKinds) && fieldKinds[top.kind] {
			f.field = fieldNames[top.node.FieldNameForNamedChild(uint32(i))]
		}
		path = append(path, f)
		descend, stop := visit(path)
		if stop {
			return path
		}
		if !descend {
			path = path[:len(path)-1]
			continue
		}
		open(&path[len(path)-1])
	}
	return path
}

// text returns the source of n.
func text(src []byte, n *sitter.Node) []byte {
	return src[n.StartByte():n.EndByte()]
}

// line returns the 1-based line on which n starts.
func line(n *sitter.Node) int {
	return int(n.StartPosition().Row) + 1
}
