import sys; sys.path.insert(0, '.')
from fods import write
exec(open('scen2.py').read().split('# RAI of the last')[0])
b = base()
b[1] = b[1] + [None, "ATTENZIONE: importo contestato"]   # a note beyond the header, no header above
write("note_beyond.fods", [("Estratto", [H] + b)])
