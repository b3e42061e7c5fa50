import sys; sys.path.insert(0, '.')
from fods import write
H = ["Data Doc","Nr Documento","Cliente","CF/PIVA","Commodity","Punto","Decorrenza Switch","Livello Tensione","Uso","Consumo Smc","Scadenza","Competenza Dal","Competenza Al","Totale Documento","Residuo","Canone TV","Tipo Lett.","Conguagliata","Data Sollecito","Canale Sollecito","Ricevuto Il","Pagare Entro","Avviso CMOR","Protocollo","Spesa Annua","Mesi Fornitura","Punto Attivo","Cambio Intestatario","Filiale"]
D = lambda s, st="long": ("d", s, st)
F = lambda v, st="n2": ("f", v, st)
def laura(doc, date, due, da, a, tot, res, rai, tl, cong, **kw):
    r = [D(date), doc, "Laura Bianchi", "BNCLRA80A41F205G", "EE", "IT001E00004567", D("2025-03-01"), "Bassa", None, None, D(due), D(da), D(a), F(tot), F(res), rai, tl, cong, D("2025-01-10"), "RACC", D("2025-01-14"), D("2025-01-30"), ("f", 1, None), "R-2025-0101", F(1183.2), ("f", 12, None), "S", "No", "Nord"]
    for k, v in kw.items(): r[H.index(k.replace('_', ' '))] = v
    return r
base = lambda **kw: [
  laura("G24-10311", "2024-10-15", "2024-11-04", "2024-09-01", "2024-09-30", 96.4, 96.4, F(9), "R", None),
  laura("G24-11420", "2024-11-15", "2024-12-05", "2024-10-01", "2024-10-31", 123.45, 123.45, F(9), "C", None),
  laura("G24-12003", "2024-12-15", "2025-01-07", "2024-11-01", "2024-11-30", 141.3, 141.3, F(9), "S", "S", **kw),
]
# RAI of the last invoice: a formula that fails (#N/D); with and without a cached value
write("rai_na.fods", [("Estratto", [H] + base(Canone_TV=("fx", ("of:=NA()", None), None)))])
write("rai_div0.fods", [("Estratto", [H] + base(Canone_TV=("fx", ("of:=1/0", None), None)))])
# Residuo formula = Totale - something: cached
write("residuo_formula.fods", [("Estratto", [H] + base(Residuo=("fx", ("of:=[.N4]-0", 141.3), "n2")))])
# amounts with currency and grouping formats; a 1234.56 invoice
write("formats.fods", [("Estratto", [H] + base(Totale_Documento=("c", 1234.56, "eur"), Residuo=("f", 1234.56, "grp")))])
# short-year dates
write("shortdates.fods", [("Estratto", [H] + [[D(c[1], "short") if isinstance(c, tuple) and c[0] == "d" else c for c in r] for r in base()])])
# boolean in Avviso CMOR; -0 in RAI
write("bool.fods", [("Estratto", [H] + base(Avviso_CMOR=("b", "true", None), Canone_TV="-0,00"))])
# rows reversed, one duplicated
b = base()
write("dup_reversed.fods", [("Estratto", [H] + [b[2], b[1], b[0], b[1]])])
