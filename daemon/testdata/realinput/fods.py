# Build a flat ODS workbook: sheets of typed cells, as a person types them in Calc.
# cell: None (empty), "text", ("f", value, style), ("d", "YYYY-MM-DD", style), ("c", value, style)
import sys, html
NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
 'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
 'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
 'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
 'xmlns:number="urn:oasis:names:tc:opendocument:xmlns:datastyle:1.0" '
 'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"')
STYLES = '''<office:automatic-styles>
<number:date-style style:name="Nshort"><number:day number:style="long"/><number:text>/</number:text><number:month number:style="long"/><number:text>/</number:text><number:year/></number:date-style>
<number:date-style style:name="Nlong"><number:day number:style="long"/><number:text>/</number:text><number:month number:style="long"/><number:text>/</number:text><number:year number:style="long"/></number:date-style>
<number:currency-style style:name="Neur"><number:number number:decimal-places="2" number:min-decimal-places="2" number:min-integer-digits="1" number:grouping="true"/><number:text> </number:text><number:currency-symbol number:language="it" number:country="IT">€</number:currency-symbol></number:currency-style>
<number:number-style style:name="Ngrp"><number:number number:decimal-places="2" number:min-decimal-places="2" number:min-integer-digits="1" number:grouping="true"/></number:number-style>
<number:number-style style:name="N2"><number:number number:decimal-places="2" number:min-decimal-places="2" number:min-integer-digits="1"/></number:number-style>
<number:number-style style:name="Nsci"><number:scientific-number number:decimal-places="2" number:min-integer-digits="1" number:min-exponent-digits="2"/></number:number-style>
<style:style style:name="short" style:family="table-cell" style:parent-style-name="Default" style:data-style-name="Nshort"/>
<style:style style:name="long" style:family="table-cell" style:parent-style-name="Default" style:data-style-name="Nlong"/>
<style:style style:name="eur" style:family="table-cell" style:parent-style-name="Default" style:data-style-name="Neur"/>
<style:style style:name="grp" style:family="table-cell" style:parent-style-name="Default" style:data-style-name="Ngrp"/>
<style:style style:name="n2" style:family="table-cell" style:parent-style-name="Default" style:data-style-name="N2"/>
<style:style style:name="sci" style:family="table-cell" style:parent-style-name="Default" style:data-style-name="Nsci"/>
</office:automatic-styles>'''
def cell(c):
    if c is None or c == "": return '<table:table-cell/>'
    if isinstance(c, str):
        return '<table:table-cell office:value-type="string"><text:p>%s</text:p></table:table-cell>' % html.escape(c)
    t, v, st = c
    s = ' table:style-name="%s"' % st if st else ''
    if t == "f":
        return '<table:table-cell%s office:value-type="float" office:value="%s"/>' % (s, v)
    if t == "c":
        return '<table:table-cell%s office:value-type="currency" office:currency="EUR" office:value="%s"/>' % (s, v)
    if t == "fx":  # formula: v = (formula, cached float or None)
        fo, val = v
        cached = ' office:value-type="float" office:value="%s"' % val if val is not None else ''
        return '<table:table-cell%s table:formula="%s"%s/>' % (s, html.escape(fo), cached)
    if t == "b":
        return '<table:table-cell%s office:value-type="boolean" office:boolean-value="%s"/>' % (s, v)
    if t == "d":
        return '<table:table-cell%s office:value-type="date" office:date-value="%s"/>' % (s, v)
    raise ValueError(t)
def write(path, sheets):
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<office:document %s office:version="1.2" office:mimetype="application/vnd.oasis.opendocument.spreadsheet">' % NS, STYLES, '<office:body><office:spreadsheet>']
    for name, rows in sheets:
        out.append('<table:table table:name="%s">' % html.escape(name))
        for r in rows:
            out.append('<table:table-row>' + ''.join(cell(c) for c in r) + '</table:table-row>')
        out.append('</table:table>')
    out.append('</office:spreadsheet></office:body></office:document>')
    open(path, 'w', encoding='utf-8').write('\n'.join(out))
