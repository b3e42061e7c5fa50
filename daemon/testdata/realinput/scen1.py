import sys; sys.path.insert(0, '.')
from fods import write
H = ["Data Doc","Nr Documento","Cliente","CF/PIVA","Commodity","Punto","Decorrenza Switch","Livello Tensione","Uso","Consumo Smc","Scadenza","Competenza Dal","Competenza Al","Totale Documento","Residuo","Canone TV","Tipo Lett.","Conguagliata","Data Sollecito","Canale Sollecito","Ricevuto Il","Pagare Entro","Avviso CMOR","Protocollo","Spesa Annua","Mesi Fornitura","Punto Attivo","Cambio Intestatario","Filiale"]
H[1] = "  NR   documento "   # extra spaces and case
D = lambda s, st="long": ("d", s, st)
F = lambda v, st=None: ("f", v, st)
def laura(doc, date, due, da, a, tot, res, rai, tl, cong):
    return [D(date), doc, "Laura Bianchi", "BNCLRA80A41F205G", "EE", "IT001E00004567", D("2025-03-01"), "Bassa", None, None, D(due), D(da), D(a), F(tot, "n2"), F(res, "n2"), F(rai, "n2"), tl, cong, D("2025-01-10"), "RACC", D("2025-01-14"), D("2025-01-30"), F(1), "R-2025-0101", F(1183.2, "n2"), F(12), "S", "No", "Nord"]
rows1 = [H,
  laura("G24-10311", "2024-10-15", "2024-11-04", "2024-09-01", "2024-09-30", 96.4, 96.4, 9, "R", None),
  [None]*29,
  laura("G24-11420", "2024-11-15", "2024-12-05", "2024-10-01", "2024-10-31", 123.45, 123.45, 9, "C", None),
]
rows2 = [H,
  laura("G24-12003", "2024-12-15", "2025-01-07", "2024-11-01", "2024-11-30", 141.3, 141.3, 9, "S", "S"),
]
write("split_sheets.fods", [("Estratto", rows1), ("Foglio2", rows2)])
write("one_sheet.fods", [("Estratto", rows1 + rows2[1:])])
write("empty_sheets.fods", [("Estratto", rows1 + rows2[1:]), ("Foglio2", []), ("Foglio3", [["   "]])])
